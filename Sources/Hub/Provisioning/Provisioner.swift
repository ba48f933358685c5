import AWS
import AWSIoT
import Backoff
import Foundation
import Logging
import Metrics
import Store
import Synchronization

/// Drives every device's resources in AWS toward what its integrations want, one durable job per
/// (device, integration): the `aws_things` row, leased by one worker at a time, each step recorded
/// as it completes so that a crash or a failure resumes where it was.
public final class Provisioner: Sendable {
    public struct Configuration: Sendable {
        /// Jobs run at once; AWS's quotas, enforced by each client's rate limiter, set the pace.
        public var concurrency: Int
        /// How long a claimed job is held before another worker may take it over (a crashed node's jobs).
        public var leaseDuration: TimeInterval
        /// The longest an idle worker sleeps before looking for due work.
        public var pollInterval: TimeInterval
        /// How often each integration is compared with AWS; nil never.
        public var reconcileInterval: TimeInterval?

        public init(concurrency: Int = 48, leaseDuration: TimeInterval = 120, pollInterval: TimeInterval = 2, reconcileInterval: TimeInterval? = 3600) {
            self.concurrency = concurrency
            self.leaseDuration = leaseDuration
            self.pollInterval = pollInterval
            self.reconcileInterval = reconcileInterval
        }
    }

    let hub: Hub
    let configuration: Configuration
    /// This worker's name on the leases it takes.
    let owner = "provisioner-" + UUID().uuidString.lowercased()
    /// For tests: called after a step's AWS calls returned and before the store hears of them. An
    /// error thrown here is a crash: the job stops on the spot, recording nothing, lease held.
    let afterStep: (@Sendable (AWSProvisioningStep, String) throws -> Void)?
    let logger: Logger

    public init(
        hub: Hub, configuration: Configuration = Configuration(),
        afterStep: (@Sendable (_ step: AWSProvisioningStep, _ deviceID: String) throws -> Void)? = nil
    ) {
        self.hub = hub
        self.configuration = configuration
        self.afterStep = afterStep
        self.logger = hub.logger
    }

    /// Works until cancelled: claims due jobs up to the concurrency, runs them, sleeps until the
    /// next is due or new work is written; removes deleted integrations once their devices are
    /// gone; compares integrations with AWS at the reconcile interval.
    public func run() async {
        await withDiscardingTaskGroup { group in
            if let interval = self.configuration.reconcileInterval {
                group.addTask { await self.reconcilePeriodically(every: interval) }
            }
            group.addTask { _ = await self.dispatch(stopWhenIdle: false, deadline: nil, progress: nil) }
        }
    }

    /// Runs due jobs until none is left to run (jobs that failed for good wait for an operator
    /// and are left; jobs backing off after a transient failure are waited for), or `timeout`
    /// passes. For the CLI, benchmarks and tests.
    ///
    /// - Parameter progress: told how many jobs are left, as they finish.
    public func drain(timeout: Duration = .seconds(300), progress: (@Sendable (_ left: Int) -> Void)? = nil) async throws {
        _ = await self.dispatch(stopWhenIdle: true, deadline: ContinuousClock.now + timeout, progress: progress)
    }

    /// Runs one device's job in one integration here and now (for an API call that answers only
    /// once AWS holds the thing), if it needs work and no worker holds it; a worker that does
    /// finishes it instead. Either way the job stays durable: a crash here leaves it to the others.
    public func runNow(integrationID: String, deviceID: String) async throws {
        let now = self.hub.now()
        let leaseUntil = now.addingTimeInterval(self.configuration.leaseDuration)
        let claimed = try await self.hub.store.transaction { session in
            try await session.awsThings.claim(integrationID: integrationID, deviceID: deviceID, now: now, owner: self.owner, leaseUntil: leaseUntil)
        }
        if let claimed { await self.runJob(claimed) }
    }

    /// Jobs one dispatcher has running.
    private final class Running: Sendable {
        let count = Atomic<Int>(0)
    }

    private func dispatch(stopWhenIdle: Bool, deadline: ContinuousClock.Instant?, progress: (@Sendable (Int) -> Void)?) async -> Bool {
        let running = Running()
        var lastHousekeeping = Date.distantPast
        return await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                if let deadline, ContinuousClock.now >= deadline { return false }
                let generation = self.hub.provisioningDoorbell.generation
                let free = self.configuration.concurrency - running.count.load(ordering: .relaxed)
                var claimed: [ProvisioningJob] = []
                if free > 0 {
                    do {
                        claimed = try await self.claim(limit: free)
                    } catch {
                        self.logger.warning("cannot claim provisioning jobs", metadata: ["error": "\(error)"])
                    }
                }
                for record in claimed {
                    running.count.add(1, ordering: .relaxed)
                    group.addTask {
                        await self.runJob(record)
                        running.count.subtract(1, ordering: .relaxed)
                        self.hub.provisioningDoorbell.ring()
                    }
                }
                if let progress, !claimed.isEmpty || running.count.load(ordering: .relaxed) == 0,
                    let left = try? await self.hub.store.session.awsThings.countNeedingWork()
                {
                    progress(left)
                }
                if Date().timeIntervalSince(lastHousekeeping) > self.configuration.pollInterval || (stopWhenIdle && claimed.isEmpty) {
                    lastHousekeeping = Date()
                    await self.finishDeletedIntegrations()
                }
                if stopWhenIdle, claimed.isEmpty, running.count.load(ordering: .relaxed) == 0,
                    (try? await self.hub.store.session.awsThings.countNeedingWork(excludingFailed: true)) == 0
                {
                    await self.finishDeletedIntegrations()
                    return true
                }
                if claimed.count < free || free <= 0 {
                    await self.hub.provisioningDoorbell.wait(since: generation, timeout: await self.idleWait())
                }
            }
            return false
        }
    }

    private func idleWait() async -> Duration {
        let poll = self.configuration.pollInterval
        guard let due = try? await self.hub.store.session.awsThings.nextDue() else { return .seconds(poll) }
        return .seconds(min(poll, max(0.05, due.timeIntervalSince(self.hub.now()) + 0.01)))
    }

    private func claim(limit: Int) async throws -> [ProvisioningJob] {
        let now = self.hub.now()
        let leaseUntil = now.addingTimeInterval(self.configuration.leaseDuration)
        let owner = self.owner
        return try await self.hub.store.transaction { session in
            try await session.awsThings.claimDue(now: now, limit: limit, owner: owner, leaseUntil: leaseUntil)
        }
    }

    // MARK: One job

    /// The job lost its lease to another worker; it stops without writing.
    struct LeaseLost: Error {}

    func runJob(_ claimed: ProvisioningJob) async {
        // The lease is renewed while the job runs, however slow AWS is: only a worker that died
        // lets it run out. Should it be lost all the same, the job stops at once, mid-call.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.work(claimed) }
            group.addTask { await self.keepLease(claimed) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Renews the lease until cancelled; returns when the lease is lost.
    private func keepLease(_ record: ProvisioningJob) async {
        let interval = self.configuration.leaseDuration / 3
        while (try? await Task.sleep(for: .seconds(interval))) != nil {
            do {
                let until = self.hub.now().addingTimeInterval(self.configuration.leaseDuration)
                guard try await self.hub.store.session.awsThings.renewLease(record, until: until) else {
                    self.logger.warning("provisioning lease lost; stopping the job", metadata: [LogKey.deviceID: "\(record.deviceID)"])
                    return
                }
            } catch {
                self.logger.notice("cannot renew a provisioning lease", metadata: [LogKey.deviceID: "\(record.deviceID)", "error": "\(error)"])
            }
        }
    }

    /// The plan for the row as the integration and the device are now, or nil when the
    /// integration is gone.
    static func currentPlan(for record: ProvisioningJob, wanted: ProvisioningTarget, in session: StoreSession) async throws -> (ProvisioningPlan, Integration)? {
        guard let integration = try await session.integrations.get(id: record.integrationID) else { return nil }
        let device = try await session.devices.get(tenantID: record.tenantID, id: record.deviceID)
        return (ProvisioningPlan(integration: integration, deviceID: record.deviceID, device: device, wanted: wanted), integration)
    }

    private func work(_ claimed: ProvisioningJob) async {
        var record = claimed
        let plan: ProvisioningPlan
        let integration: Integration
        do {
            guard let current = try await Self.currentPlan(for: record, wanted: record.wanted, in: self.hub.store.session) else { return }
            (plan, integration) = current
        } catch {
            self.logger.warning("cannot load a provisioning job", metadata: [LogKey.deviceID: "\(record.deviceID)", "error": "\(error)"])
            return
        }
        let client: AWSIoTClient
        do {
            client = try self.hub.connections.client(for: integration)
        } catch {
            await self.fail(&record, step: nil, error: error)
            return
        }
        var job = ProvisioningStepRunner(provisioner: self, client: client, integration: integration, plan: plan)
        while let step = job.plan.nextStep(record.progress) {
            let before = record
            do {
                try await job.perform(step, on: &record)
                if record.progress == before.progress && record.sealedPrivateKey == before.sealedPrivateKey {
                    // A step that changes nothing would be asked for again, forever.
                    throw HubError.conflict("no_progress", "the step changed nothing; the integration's settings may not fit this device")
                }
            } catch is LeaseLost {
                return
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                await self.fail(&record, step: step, error: error)
                return
            }
            if let afterStep = self.afterStep {
                do {
                    try afterStep(step, record.deviceID)
                } catch {
                    self.logger.notice("simulated crash", metadata: [LogKey.deviceID: "\(record.deviceID)", "conduit.step": "\(step)"])
                    return
                }
            }
            Counter(label: "conduit_provisioning_steps_total", dimensions: [("step", step.rawValue)]).increment()
            do {
                guard let next = try await self.commit(&record) else { return }
                job.plan = next
            } catch {
                self.logger.warning("cannot record a provisioning step", metadata: [LogKey.deviceID: "\(record.deviceID)", "error": "\(error)"])
                return
            }
        }
        do {
            _ = try await self.commit(&record)
        } catch {
            self.logger.warning("cannot record a provisioning job", metadata: [LogKey.deviceID: "\(record.deviceID)", "error": "\(error)"])
        }
    }

    /// Writes what the job has made mid-step (an intent, before the AWS call it announces).
    func persist(_ record: ProvisioningJob) async throws {
        let now = self.hub.now()
        let owner = record.leaseOwner ?? ""
        let leaseUntil = now.addingTimeInterval(self.configuration.leaseDuration)
        let kept = try await self.hub.store.transaction { session in
            guard let current = try await session.awsThings.get(integrationID: record.integrationID, deviceID: record.deviceID, forUpdate: true) else {
                return false
            }
            var updated = current
            updated.progress = record.progress
            updated.sealedPrivateKey = record.sealedPrivateKey
            updated.updatedAt = now
            return try await session.awsThings.update(updated, leaseOwner: owner, leaseUntil: leaseUntil)
        }
        guard kept else { throw LeaseLost() }
    }

    /// Records a completed step, against the integration's and the device's settings as they
    /// are now (an operator may have changed them, or the wanted state, meanwhile). Returns the
    /// plan for what is left, nil when the job is done (lease released, row removed when the
    /// device is no longer bound) or was lost.
    private func commit(_ record: inout ProvisioningJob) async throws -> ProvisioningPlan? {
        let now = self.hub.now()
        let owner = record.leaseOwner ?? ""
        let leaseUntil = now.addingTimeInterval(self.configuration.leaseDuration)
        let snapshot = record
        let (updated, plan) = try await self.hub.store.transaction { session -> (ProvisioningJob?, ProvisioningPlan?) in
            guard let current = try await session.awsThings.get(integrationID: snapshot.integrationID, deviceID: snapshot.deviceID, forUpdate: true),
                let (plan, _) = try await Self.currentPlan(for: snapshot, wanted: current.wanted, in: session)
            else { return (nil, nil) }
            var updated = snapshot
            updated.wanted = current.wanted
            updated.bound = current.bound
            updated.attempts = 0
            updated.lastError = nil
            updated.updatedAt = now
            let more = plan.nextStep(updated.progress) != nil
            updated.needsWork = more
            updated.state = plan.state(of: updated.progress)
            if more {
                guard try await session.awsThings.update(updated, leaseOwner: owner, leaseUntil: leaseUntil) else { return (nil, nil) }
                return (updated, plan)
            }
            let repairs = updated.progress.repairs
            updated.progress.repairs = []
            if updated.bound {
                guard try await session.awsThings.update(updated, leaseOwner: owner, leaseUntil: nil) else { return (nil, nil) }
            } else {
                try await session.awsThings.delete(integrationID: updated.integrationID, deviceID: updated.deviceID)
            }
            // The gateway's events belong to its integration, not to a device.
            let deviceID = updated.isGateway ? nil : updated.deviceID
            let gateway = updated.isGateway ? true : nil
            if !repairs.isEmpty {
                try await session.events.append(
                    tenantID: updated.tenantID, type: EventType.awsDriftRepaired, deviceID: deviceID, actor: "system",
                    data: EventLog.json(AWSEventData(integrationId: updated.integrationID, gateway: gateway, repairs: repairs)), at: now
                )
            }
            if current.state != updated.state, let type = EventType.aws(updated.state) {
                try await session.events.append(
                    tenantID: updated.tenantID, type: type, deviceID: deviceID, actor: "system",
                    data: EventLog.json(
                        AWSEventData(
                            integrationId: updated.integrationID, gateway: gateway, thingArn: updated.progress.thingArn,
                            certificateId: updated.progress.certificateID
                        )
                    ),
                    at: now
                )
            }
            return (updated, nil)
        }
        guard let updated else { return nil }
        record = updated
        if plan == nil && updated.isGateway { self.hub.gatewayDoorbell.ring() }
        if plan == nil {
            self.logger.info(
                "device \(updated.state.rawValue) in AWS",
                metadata: [LogKey.deviceID: "\(updated.deviceID)", LogKey.integrationID: "\(updated.integrationID)"]
            )
        }
        return plan
    }

    /// Records a failed step: the error, one more attempt, and when to try again.
    private func fail(_ record: inout ProvisioningJob, step: AWSProvisioningStep?, error: any Error) async {
        let now = self.hub.now()
        let owner = record.leaseOwner ?? ""
        let message = (step.map { "\($0.rawValue): " } ?? "") + Self.describe(error)
        let snapshot = record
        self.logger.notice(
            "provisioning step failed",
            metadata: [LogKey.deviceID: "\(record.deviceID)", LogKey.integrationID: "\(record.integrationID)", "error": "\(message)"]
        )
        do {
            // Counted once committed: a transaction may run again (a deadlock's victim).
            let recorded = try await self.hub.store.transaction { session -> Bool? in
                guard let current = try await session.awsThings.get(integrationID: snapshot.integrationID, deviceID: snapshot.deviceID, forUpdate: true),
                    let (plan, _) = try await Self.currentPlan(for: snapshot, wanted: current.wanted, in: session)
                else { return nil }
                var updated = snapshot
                updated.wanted = current.wanted
                updated.bound = current.bound
                updated.attempts = current.attempts + 1
                updated.lastError = message
                updated.updatedAt = now
                // What AWS refuses, and what keeps failing however long it is given, waits for an operator.
                let permanent = Self.isPermanent(error) || updated.attempts >= Self.attemptsBeforeFailed
                updated.needsWork = plan.nextStep(updated.progress) != nil
                updated.state = permanent ? .failed : plan.state(of: updated.progress)
                updated.nextAttemptAt = now.addingTimeInterval(Self.backoff(attempts: updated.attempts, permanent: permanent))
                guard try await session.awsThings.update(updated, leaseOwner: owner, leaseUntil: nil) else { return nil }
                if updated.state == .failed && current.state != .failed {
                    try await session.events.append(
                        tenantID: updated.tenantID, type: EventType.awsFailed, deviceID: updated.isGateway ? nil : updated.deviceID, actor: "system",
                        data: EventLog.json(AWSEventData(integrationId: updated.integrationID, gateway: updated.isGateway ? true : nil, error: message)),
                        at: now
                    )
                }
                return permanent
            }
            if let permanent = recorded {
                Counter(label: "conduit_provisioning_failures_total", dimensions: [("permanent", String(permanent))]).increment()
            }
        } catch {
            self.logger.warning("cannot record a provisioning failure", metadata: [LogKey.deviceID: "\(snapshot.deviceID)", "error": "\(error)"])
        }
    }

    /// Failed attempts in a row after which a job shows as `failed` even while AWS is only busy
    /// or away: at the backoff's pace, about half an hour of trying.
    static let attemptsBeforeFailed = 12

    /// Seconds before the next try: doubling from 2 s to 5 min while AWS is busy or away; from
    /// 30 s to an hour after an answer that will not change by itself (access denied, a bad name).
    static func backoff(attempts: Int, permanent: Bool) -> TimeInterval {
        (permanent ? Self.permanentBackoff : Self.transientBackoff).seconds(afterFailures: attempts)
    }

    static let transientBackoff = Backoff(first: 2, maximum: 300)
    static let permanentBackoff = Backoff(first: 30, maximum: 3600)

    /// True for an answer that retrying alone will not change.
    static func isPermanent(_ error: any Error) -> Bool {
        switch error {
        case let error as AWSError:
            // AWS settles detachments a moment after it confirms them: these pass with time.
            let settling: Set<String> = [
                "CertificateStateException", "DeleteConflictException", "ConflictingResourceUpdateException",
                "VersionConflictException", "ResourceAlreadyExistsException",
            ]
            return !(error.isRetryable || settling.contains(error.code))
        case is AWSCredentialError, is HubError, is AWSIoTValidationError, is SecretBoxError:
            return true
        default:
            return false
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as AWSError: return error.description
        case let error as AWSCredentialError: return error.message
        case let error as HubError: return error.message
        case let error as AWSIoTValidationError: return error.description
        default: return String(describing: error)
        }
    }

    // MARK: Integrations

    /// Removes deleted integrations whose devices are all gone from AWS: their thing group (when
    /// Conduit made it) and their shared policy, then the integration itself.
    func finishDeletedIntegrations() async {
        do {
            for integration in try await self.hub.store.session.integrations.list(status: .deleting) {
                guard try await self.hub.store.session.awsThings.count(integrationID: integration.id) == 0 else { continue }
                let client = try self.hub.connections.client(for: integration)
                for group in integration.createdGroups {
                    do {
                        try await client.deleteThingGroup(name: group)
                    } catch let error as AWSError where error.isNotFound {
                        // Gone already.
                    }
                }
                // Its shared policy, had it one at any time (no certificate holds it any more).
                let shared = ProvisioningPlan.sharedPolicyName(integration.id)
                try await ProvisioningStepRunner.deletePolicy(shared, client: client)
                self.hub.connections.forgetPolicy(shared)
                try await self.hub.store.session.integrations.delete(id: integration.id)
                self.logger.info("integration removed", metadata: [LogKey.integrationID: "\(integration.id)"])
            }
        } catch {
            self.logger.notice("cannot finish removing an integration yet", metadata: ["error": "\(error)"])
        }
    }

    private func reconcilePeriodically(every interval: TimeInterval) async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: .seconds(interval))) != nil else { return }
            do {
                for integration in try await self.hub.store.session.integrations.list(status: .active) where integration.active {
                    _ = try await self.hub.integrations.reconcile(integration)
                }
            } catch {
                self.logger.notice("periodic reconcile failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// The details of an `aws.*` event.
struct AWSEventData: Encodable {
    var integrationId: String
    /// True for the integration's downlink gateway.
    var gateway: Bool?
    var thingArn: String?
    var certificateId: String?
    var error: String?
    var repairs: [String]?

    init(
        integrationId: String, gateway: Bool? = nil, thingArn: String? = nil, certificateId: String? = nil, error: String? = nil,
        repairs: [String]? = nil
    ) {
        self.integrationId = integrationId
        self.gateway = gateway
        self.thingArn = thingArn
        self.certificateId = certificateId
        self.error = error
        self.repairs = repairs
    }
}
