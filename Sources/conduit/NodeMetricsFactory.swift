import Metrics

/// Every metric of this process with its node's id as a `node` label, so that the figures of
/// several nodes scraped into one Prometheus stay apart.
struct NodeMetricsFactory: MetricsFactory {
    let base: any MetricsFactory
    let nodeID: String

    private func labelled(_ dimensions: [(String, String)]) -> [(String, String)] {
        dimensions + [("node", self.nodeID)]
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        self.base.makeCounter(label: label, dimensions: self.labelled(dimensions))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        self.base.makeFloatingPointCounter(label: label, dimensions: self.labelled(dimensions))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        self.base.makeMeter(label: label, dimensions: self.labelled(dimensions))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        self.base.makeRecorder(label: label, dimensions: self.labelled(dimensions), aggregate: aggregate)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        self.base.makeTimer(label: label, dimensions: self.labelled(dimensions))
    }

    func destroyCounter(_ handler: any CounterHandler) { self.base.destroyCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { self.base.destroyMeter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { self.base.destroyFloatingPointCounter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { self.base.destroyRecorder(handler) }
    func destroyTimer(_ handler: any TimerHandler) { self.base.destroyTimer(handler) }
}
