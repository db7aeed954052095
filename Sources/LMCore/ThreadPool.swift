#if canImport(Glibc)
import Glibc
#endif
import Synchronization


/// A fixed set of worker threads for swift-lm's own parallel loops.
///
/// `parallelFor` splits a range into one contiguous chunk per thread; the calling thread runs
/// chunk 0. Chunks depend only on the range and the thread count, and every kernel partitions
/// over *outputs* (never over a reduction), so results are bit-identical for any thread count.
/// Workers spin briefly between jobs (decode issues many short jobs per token) and then sleep.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads, the caller included.
    public let threadCount: Int

    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var workers: [pthread_t] = []
    private var scratchBuffers: [UnsafeMutableRawPointer] = []
    private var scratchBytes = 0

    /// Spin iterations before a worker sleeps (roughly tens of microseconds).
    private static let spinLimit = 20_000

    public init(threads: Int) {
        self.threadCount = max(1, threads)
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
            job?(index)
            pending.subtract(1, ordering: .releasing)
        }
    }

    /// Runs `body(threadIndex)` once on each of the `threadCount` threads and waits for all.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 {
            body(0)
            return
        }
        withoutActuallyEscaping(body) { escaping in
            job = escaping
            pending.store(threadCount - 1, ordering: .releasing)
            pthread_mutex_lock(&mutex)
            generation.add(1, ordering: .releasing)
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
            escaping(0)
            // Spin (the other chunks finish within microseconds when cores are free); yield
            // now and then so a worker sharing a busy core can run.
            var spins = 0
            while pending.load(ordering: .acquiring) != 0 {
                spins &+= 1
                if spins & 1023 == 0 { sched_yield() }
            }
            job = nil
        }
    }

    /// Splits `0..<n` into `threadCount` contiguous chunks (multiples of `grain` where
    /// possible) and runs `body(chunk)` on each in parallel. Small `n` runs on the caller.
    public func parallelFor(_ n: Int, grain: Int = 1, minimumPerThread: Int = 1,
                            _ body: (Range<Int>) -> Void) {
        if n <= 0 { return }
        if threadCount == 1 || n < minimumPerThread * 2 {
            body(0..<n)
            return
        }
        let chunks = threadCount
        run { t in
            let r = ThreadPool.chunk(n, parts: chunks, index: t, grain: grain)
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
