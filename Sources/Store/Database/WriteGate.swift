/// Lets one write transaction of this process at a time into SQLite, in arrival order.
///
/// SQLite has one writer per file. Without the gate, concurrent transactions of one process
/// would all sit in SQLite's busy handler, each holding a blocked thread and sleeping in
/// growing steps; with it they queue here and start the moment the previous one ends.
/// Other processes (an admin command beside `serve`) still meet the busy timeout.
actor WriteGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func acquire() async {
        guard self.busy else {
            self.busy = true
            return
        }
        await withCheckedContinuation { self.waiters.append($0) }
    }

    func release() {
        if self.waiters.isEmpty {
            self.busy = false
        } else {
            self.waiters.removeFirst().resume()
        }
    }
}
