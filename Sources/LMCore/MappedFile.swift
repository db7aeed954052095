#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A whole file mapped into memory, private copy-on-write (writes never reach the file).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeMutableRawPointer?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw LMError(.fileNotFound, "cannot open '\(path)': \(reason)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw LMError(.fileNotFound, "cannot stat '\(path)'")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw LMError(.fileNotFound, "'\(path)' is a folder, expected a file")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = nil
            return
        }
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw LMError(.ioFailure, "cannot map '\(path)' into memory: \(String(cString: strerror(errno)))")
        }
        base = p
    }

    deinit {
        if let base { munmap(base, size) }
    }

    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: size)
    }
}

/// File-system helpers shared by checkpoint and log writers.
public enum FileIO {
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, then rename.
    /// On any failure the previous file at `path` is left untouched.
    /// A path that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a pipe) is
    /// written in place: renaming over it would replace a device with a file.
    public static func writeAtomically(_ path: String, _ write: (_ fd: Int32) throws -> Void) throws {
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
            guard (st.st_mode & S_IFMT) != S_IFDIR else {
                throw LMError(.invalidArgument, "'\(path)' is a folder — give a file name")
            }
            let fd = open(path, O_WRONLY | O_TRUNC)
            guard fd >= 0 else { throw LMError(.ioFailure, "cannot open '\(path)': \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try write(fd)
            return
        }
        removeStaleTemporaries(of: path)
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else {
            throw LMError(.ioFailure, "cannot create '\(tmp)': \(String(cString: strerror(errno)))")
        }
        do {
            try write(fd)
            guard fsync(fd) == 0 else {
                throw LMError(.ioFailure, "cannot flush '\(tmp)': \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw LMError(.ioFailure, "cannot move '\(tmp)' to '\(path)': \(reason)")
        }
    }

    /// Deletes the temporary files `path.tmp-PID` that processes killed while writing `path`
    /// left behind (those whose PID is no longer running).
    static func removeStaleTemporaries(of path: String) {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path, prefix = url.lastPathComponent + ".tmp-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            unlink(folder + "/" + name)
        }
    }

    /// Writes all of `buffer` to `fd`, or throws (disk full, ...).
    public static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw LMError(.ioFailure, "cannot write '\(path)': \(String(cString: strerror(errno))) — free some disk space and try again")
            }
            done += n
        }
    }

    /// Writes a whole text file atomically.
    public static func writeString(_ s: String, to path: String) throws {
        try writeAtomically(path) { fd in
            var copy = s
            try copy.withUTF8 { try writeAll(fd, UnsafeRawBufferPointer($0), path: path) }
        }
    }

    /// Copies a file atomically (the destination is replaced only when the copy is complete).
    public static func copyAtomically(_ from: String, _ to: String) throws {
        let data = try MappedFile(path: from)
        try writeAtomically(to) { fd in try writeAll(fd, data.bytes, path: to) }
    }

    public static func readString(_ path: String) throws -> String {
        let f = try MappedFile(path: path)
        return String(decoding: f.bytes, as: UTF8.self)
    }

    public static func makeDirectory(_ path: String) throws {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part + "/"
            if !isDirectory(prefix), mkdir(prefix, 0o755) != 0, errno != EEXIST {
                throw LMError(.ioFailure, "cannot create folder '\(prefix)': \(String(cString: strerror(errno)))")
            }
        }
    }
}
