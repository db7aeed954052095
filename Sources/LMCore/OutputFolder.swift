import Foundation

/// An exclusive lock on a folder a command writes (a training run, a quantized model): two
/// processes never write one folder. It is `flock` on a `.lm-lock` file inside, so the kernel
/// releases it when the process dies — a `kill -9` never leaves a stale lock — and the file
/// holds the pid, which the refused process names.
public final class FolderLock {
    public let folder: String
    private let lockPath: String
    private let fd: Int32
    private let createdFolder: Bool

    /// Locks `folder` (created if missing), or throws naming the process that holds it.
    public init(folder: String, flag: String = "--out") throws {
        self.folder = folder
        createdFolder = !FileIO.exists(folder)
        try FileIO.makeDirectory(folder)
        lockPath = folder + "/.lm-lock"
        while true {
            let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw LMError(.ioFailure, "cannot create '\(folder)/.lm-lock': \(String(cString: strerror(errno))) — check that \(flag) '\(folder)' is writable")
            }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let busy = errno == EWOULDBLOCK
                let holder = FolderLock.readPID(fd)
                close(fd)
                guard busy else { throw LMError(.ioFailure, "cannot lock '\(lockPath)': \(String(cString: strerror(errno)))") }
                throw LMError(.invalidArgument, "\(flag) '\(folder)' is in use by another lm process\(holder.map { " (pid \($0))" } ?? "") — wait for it to finish, or choose another \(flag)")
            }
            // The holder before us may have removed the file between our open and flock: then
            // we hold a lock on a file nobody else can see — start again on the one at the path.
            var atPath = stat(), held = stat()
            if stat(lockPath, &atPath) == 0, fstat(fd, &held) == 0, atPath.st_ino == held.st_ino, atPath.st_dev == held.st_dev {
                let pid = Array("\(getpid())\n".utf8)
                _ = ftruncate(fd, 0)
                _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                self.fd = fd
                FolderLock.removeLeftovers(in: folder)
                return
            }
            close(fd)
        }
    }

    deinit {
        unlink(lockPath)
        close(fd)
        if createdFolder { rmdir(folder) }  // only when nothing was written into it
    }

    /// Deletes the temporary files of atomic writes (`NAME.tmp-PID`, see `FileIO.writeAtomically`)
    /// that a killed process left: whoever holds the lock is the only writer of the folder.
    private static func removeLeftovers(in folder: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            guard let r = name.range(of: ".tmp-", options: .backwards), !name[r.upperBound...].isEmpty,
                  name[r.upperBound...].allSatisfy(\.isASCII), Int(name[r.upperBound...]) != nil else { continue }
            unlink(folder + "/" + name)
        }
    }

    private static func readPID(_ fd: Int32) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 31, 0) }
        guard n > 0 else { return nil }
        return Int(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// The checks before a command writes into an output folder: never into the model it reads,
/// and never over a model it did not make itself unless the user said `--overwrite`.
public enum OutputFolder {
    /// Whether `folder` holds a model (a config.json, safetensors weights or a GGUF file).
    public static func holdsModel(_ folder: String) -> Bool {
        guard FileIO.isDirectory(folder) else { return false }
        if FileIO.exists(folder + "/config.json") { return true }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.contains { $0.hasSuffix(".safetensors") || $0.hasSuffix(".gguf") }
    }

    /// Whether two paths name the same file or folder (symbolic links and `..` resolved).
    public static func same(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    /// Refuses `out` when it is `input`, or when it holds a model that `isOwn` does not
    /// recognise as this command's own work (a run it can resume) and `overwrite` is false.
    /// `command` names the command in the message ("lm train").
    public static func check(_ out: String, input: String?, overwrite: Bool, command: String,
                             flag: String = "--out", isOwn: (String) -> Bool = { _ in false }) throws {
        if let input, same(out, input) {
            throw LMError(.invalidArgument, "\(flag) '\(out)' is the model \(command) reads (--model) — writing there would destroy it: choose another \(flag)")
        }
        if !overwrite, holdsModel(out), !isOwn(out) {
            throw LMError(.invalidArgument, "\(flag) '\(out)' already holds a model that \(command) did not make — choose another \(flag), or pass --overwrite to replace it")
        }
    }
}
