import Foundation

/// A one-line progress display on stderr: a bar, counts, rate and ETA, plus free-form fields
/// (loss, tokens/s). On a terminal it redraws in place; otherwise it prints a line now and then.
final class ProgressBar {
    /// Work items in all (may be set once the caller knows it).
    var total: Int { didSet { total = max(total, 1) } }
    let label: String
    /// What one item is, for the rate ("it/s", "windows/s").
    let unit: String
    private let start: Int
    private let startTime = Date()
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private var lastPrinted = Date.distantPast
    private var lastLineLength = 0

    init(total: Int, start: Int = 0, label: String, unit: String = "it") {
        self.total = max(total, 1)
        self.start = start
        self.label = label
        self.unit = unit
    }

    static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    /// Draws the bar at `done` with extra `fields` ("loss 1.93").
    func update(_ done: Int, fields: [String], force: Bool = false) {
        let now = Date()
        if !force && now.timeIntervalSince(lastPrinted) < (isTerminal ? 0.1 : 10) { return }
        lastPrinted = now
        let elapsed = now.timeIntervalSince(startTime)
        let rate = Double(done - start) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : .infinity
        let width = 24
        let filled = min(width, width * done / total)
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let pct = 100 * done / total
        let line = "\(label) \(bar) \(done)/\(total) \(pct)% | " + (fields + [String(format: "%.2f \(unit)/s", rate), "ETA \(ProgressBar.formatDuration(eta))"]).joined(separator: " | ")
        if isTerminal {
            let pad = max(0, lastLineLength - line.count)
            FileHandle.standardError.write(("\r" + line + String(repeating: " ", count: pad)).data(using: .utf8)!)
            lastLineLength = line.count
        } else {
            FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
        }
    }

    /// Ends the bar's line (terminal) so later output starts on a new line.
    func finish() {
        if isTerminal && lastLineLength > 0 { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        lastLineLength = 0
    }

    /// Prints a message above the bar.
    func message(_ text: String) {
        finish()
        FileHandle.standardError.write((text + "\n").data(using: .utf8)!)
    }
}
