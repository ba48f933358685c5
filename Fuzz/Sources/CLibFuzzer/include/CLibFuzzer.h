#ifndef CONDUIT_CLIBFUZZER_H
#define CONDUIT_CLIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for a program with a `main` of its own ("using libFuzzer as a library",
/// https://llvm.org/docs/LibFuzzer.html). SwiftPM links every executable with its module's
/// `main` (`--defsym main=<module>_main`), which hides the `main` of libFuzzer's runtime, so
/// each target's main.swift starts the driver itself. `-sanitize=fuzzer` links the runtime.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*testOneInput)(const uint8_t *data, size_t size));

#endif
