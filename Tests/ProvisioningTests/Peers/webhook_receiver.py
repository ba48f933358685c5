#!/usr/bin/env python3
"""A webhook receiver for the tests: every request's signature is checked with the
`standardwebhooks` package (PyPI), the reference implementation of Standard Webhooks.

Usage: webhook_receiver.py PORT LOG --secret whsec_... [--secret ...] [--answers 500,500,500,200]
                           [--retry-after SECONDS] [--redirect URL] [--hold SECONDS]

Listens on 127.0.0.1:PORT. Answers the requests in turn with the statuses of --answers (then
200); a 3xx answer carries Location: --redirect, and --retry-after adds Retry-After to non-2xx
answers; --hold keeps each request that long before answering, with LOG.holding made as it
starts to. Appends one JSON line per request to LOG: its webhook-id, the status answered, whether
each --secret verified it (`verified`: a list in the order given), the number of signatures, and
the parsed body. Prints "listening" once it is.
"""

import argparse
import ctypes
import http.server
import json
import sys
import time

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    # Gone with the test that started it, however it ends.
    PR_SET_PDEATHSIG, SIGKILL = 1, 9
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, SIGKILL)
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("log")
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--answers", default="")
    parser.add_argument("--retry-after", default=None)
    parser.add_argument("--redirect", default=None)
    parser.add_argument("--hold", type=float, default=0)
    arguments = parser.parse_args()
    answers = [int(value) for value in arguments.answers.split(",") if value]
    verifiers = [Webhook(secret) for secret in arguments.secret]
    count = {"requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length).decode()
            headers = {key.lower(): value for key, value in self.headers.items()}
            verified = []
            for verifier in verifiers:
                try:
                    verifier.verify(body, headers)
                    verified.append(True)
                except WebhookVerificationError:
                    verified.append(False)
            index = count["requests"]
            count["requests"] += 1
            status = answers[index] if index < len(answers) else 200
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if arguments.hold:
                open(arguments.log + ".holding", "a").close()
                time.sleep(arguments.hold)
            with open(arguments.log, "a") as log:
                log.write(json.dumps({
                    "id": headers.get("webhook-id"), "status": status, "verified": verified,
                    "signatures": len(headers.get("webhook-signature", "").split(" ")), "body": parsed,
                }) + "\n")
            self.send_response(status)
            if 300 <= status < 400 and arguments.redirect:
                self.send_header("Location", arguments.redirect)
            if not 200 <= status < 300 and arguments.retry_after:
                self.send_header("Retry-After", arguments.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", arguments.port), Handler)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
