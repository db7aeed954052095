#if canImport(Glibc)
import Glibc
#endif
import Synchronization


/// A fixed set of worker threads for swift-lm's own parallel loops.
///
/// Work is cut into pieces fixed by the problem (`forEachPiece`, `parallelFor`: a few per
/// thread) that whichever thread is free claims from an atomic counter, and every kernel
/// partitions over *outputs* (never over a reduction): each output is one chain of operations
/// in a fixed order whoever computes it, so results are bit-identical for any thread count and
/// any schedule. When a core is shared with another process, the thread on it simply claims
/// fewer pieces; and a worker that has not even started a job by the time the caller has run
/// out of pieces is not waited for — the caller runs that worker's part itself (`run`). Workers
/// spin briefly between jobs (decode issues many short jobs per token), yielding now and then,
/// and then sleep.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads, the caller included.
    public let threadCount: Int

    private let generation = Atomic<Int>(0)
    /// Per worker: 2g + 1 while it runs job g, 2g once job g is settled (done by it, or taken
    /// over by the caller) — see `run`.
    private let tickets: [Ticket]
    /// The next unclaimed piece of the current `forEachPiece` job.
    private let nextPiece = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var workers: [pthread_t] = []
    private var scratchBuffers: [UnsafeMutableRawPointer] = []
    private var scratchBytes = 0

    /// Spin iterations before a worker sleeps (roughly tens of microseconds).
    private static let spinLimit = 20_000

    private final class Ticket: Sendable {
        let value = Atomic<Int>(0)
    }

    public init(threads: Int) {
        self.threadCount = max(1, threads)
        tickets = (0..<max(1, threads)).map { _ in Ticket() }
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        for index in 1..<threadCount {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool?.workerLoop(index: ctx.index)
                return nil
            }, context)
            precondition(rc == 0, "could not start a worker thread (pthread_create returned \(rc))")
            workers.append(thread)
        }
    }

    deinit {
        stopping.store(true, ordering: .releasing)
        pthread_mutex_lock(&mutex)
        generation.add(1, ordering: .releasing)
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        for t in workers { pthread_join(t, nil) }
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
        for b in scratchBuffers { b.deallocate() }
    }

    /// One scratch buffer of at least `bytes` (64-byte aligned) per thread, kept between calls:
    /// index it with the thread index `run` passes. Call from the thread that calls `run`.
    public func scratch(bytes: Int) -> [UnsafeMutableRawPointer] {
        if bytes > scratchBytes {
            for b in scratchBuffers { b.deallocate() }
            scratchBuffers = (0..<threadCount).map { _ in UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) }
            scratchBytes = bytes
        }
        return scratchBuffers
    }

    private final class WorkerContext {
        weak var pool: ThreadPool?
        let index: Int
        init(pool: ThreadPool, index: Int) { self.pool = pool; self.index = index }
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins & 1023 == 0 { sched_yield() }
                if spins > ThreadPool.spinLimit {
                    pthread_mutex_lock(&mutex)
                    while generation.load(ordering: .acquiring) == seen {
                        pthread_cond_wait(&cond, &mutex)
                    }
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if stopping.load(ordering: .acquiring) { return }
            // Start job `current` unless the caller has already taken it over.
            let ticket = tickets[index]
            let state = ticket.value.load(ordering: .acquiring)
            guard state < 2 * current,
                  ticket.value.compareExchange(expected: state, desired: 2 * current + 1, ordering: .acquiringAndReleasing).exchanged
            else { continue }
            job?(index)
            ticket.value.store(2 * current, ordering: .releasing)
        }
    }

    /// Runs `body(threadIndex)` once for each index in `0..<threadCount` and waits for all: the
    /// caller runs index 0, each worker its own — or, when a worker has not started by the time
    /// the caller is done with its own part (its core is busy with another process), the caller
    /// runs that index too, so nobody waits for a thread that is not running.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { escaping in
            job = escaping
            let g = generation.load(ordering: .relaxed) + 1
            pthread_mutex_lock(&mutex)
            generation.store(g, ordering: .releasing)
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
            escaping(0)
            for i in 1..<threadCount {
                let ticket = tickets[i]
                var spins = 0
                while true {
                    let state = ticket.value.load(ordering: .acquiring)
                    if state == 2 * g { break }  // done by the worker
                    if state == 2 * g + 1 {  // running: wait (yielding now and then)
                        spins &+= 1
                        if spins & 1023 == 0 { sched_yield() }
                        continue
                    }
                    if ticket.value.compareExchange(expected: state, desired: 2 * g, ordering: .acquiringAndReleasing).exchanged {
                        escaping(i)  // not started: the caller takes its part
                        break
                    }
                }
            }
            job = nil
        }
    }

    /// Runs `body(piece, threadIndex)` for every piece in `0..<pieces`; the threads claim pieces
    /// in order from a counter as they become free. The pieces must be fixed by the problem (not
    /// by the thread count) for results to be independent of the schedule.
    public func forEachPiece(_ pieces: Int, _ body: (_ piece: Int, _ thread: Int) -> Void) {
        if pieces <= 0 { return }
        if threadCount == 1 || pieces == 1 {
            for p in 0..<pieces { body(p, 0) }
            return
        }
        nextPiece.store(0, ordering: .relaxed)
        run { t in
            while true {
                let p = nextPiece.wrappingAdd(1, ordering: .relaxed).oldValue
                if p >= pieces { return }
                body(p, t)
            }
        }
    }

    /// Pieces per thread of `parallelFor` and the kernels that cut their work the same way:
    /// enough that a thread sharing its core with another process holds the others up by at
    /// most a small piece, few enough that claiming them costs nothing.
    public static let piecesPerThread = 4

    /// How many pieces to cut `units` units of work into for this pool (`piecesPerThread` per
    /// thread, at most `units`).
    public func pieceCount(_ units: Int) -> Int {
        max(1, min(units, threadCount == 1 ? 1 : threadCount * ThreadPool.piecesPerThread))
    }

    /// Splits `0..<n` into contiguous pieces (multiples of `grain` where possible, at least
    /// `minimumPerThread` long, a few per thread) and runs `body(piece)` on each in parallel,
    /// claimed dynamically. Small `n` runs on the caller.
    public func parallelFor(_ n: Int, grain: Int = 1, minimumPerThread: Int = 1,
                            _ body: (Range<Int>) -> Void) {
        if n <= 0 { return }
        if threadCount == 1 || n < minimumPerThread * 2 {
            body(0..<n)
            return
        }
        let units = (n + grain - 1) / grain
        let pieces = max(2, min(pieceCount(units), n / max(1, minimumPerThread)))
        forEachPiece(pieces) { p, _ in
            let r = ThreadPool.chunk(n, parts: pieces, index: p, grain: grain)
            if !r.isEmpty { body(r) }
        }
    }

    /// The `index`-th of `parts` contiguous chunks of `0..<n`, boundaries rounded to `grain`.
    public static func chunk(_ n: Int, parts: Int, index: Int, grain: Int = 1) -> Range<Int> {
        let units = (n + grain - 1) / grain
        let lo = min(n, (units * index / parts) * grain)
        let hi = min(n, (units * (index + 1) / parts) * grain)
        return lo..<hi
    }
}

/// The process-wide thread setting (`--threads`).
public enum Threads {
    nonisolated(unsafe) private static var pool: ThreadPool?

    /// Cores available to this process.
    public static var available: Int {
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// The shared pool (created with `available` threads on first use).
    public static var shared: ThreadPool {
        if let p = pool { return p }
        configure(available)
        return pool!
    }

    /// Sets the thread count of swift-lm's pool. OpenBLAS itself always runs single-threaded:
    /// the pool splits each GEMM across threads (see `gemm`), so there is one set of threads
    /// and results do not depend on the count.
    public static func configure(_ count: Int) {
        let n = max(1, count)
        BLAS.setThreads(1)
        if let p = pool, p.threadCount == n { return }
        pool = ThreadPool(threads: n)
    }

    public static var count: Int { shared.threadCount }
}
