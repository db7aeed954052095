import Foundation
import LMCore

/// Draws the loss curves of a run as a self-contained SVG (train loss as a line, validation
/// loss as a line with points), with axes, ticks, a legend and the best validation point.
public enum LossPlot {
    public static func svg(_ records: [StepRecord], title: String) -> String {
        let width = 800.0, height = 480.0
        let left = 70.0, right = 20.0, top = 50.0, bottom = 55.0
        let train = records.map { (Double($0.step), Double($0.trainLoss)) }.filter { $0.1.isFinite }
        let val = records.compactMap { r in r.valLoss.map { (Double(r.step), Double($0)) } }.filter { $0.1.isFinite }
        let all = train + val
        guard !all.isEmpty else {
            return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\"><text x=\"20\" y=\"40\">no data yet</text></svg>\n"
        }
        let maxStep = max(all.map(\.0).max()!, 1)
        var lo = all.map(\.1).min()!, hi = all.map(\.1).max()!
        if hi - lo < 1e-6 { hi += 0.5; lo -= 0.5 }
        let pad = (hi - lo) * 0.05
        lo -= pad; hi += pad
        func x(_ s: Double) -> Double { left + s / maxStep * (width - left - right) }
        func y(_ v: Double) -> Double { top + (hi - v) / (hi - lo) * (height - top - bottom) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="28" text-anchor="middle" font-size="16">\(escape(title))</text>

        """
        // Grid and ticks.
        for i in 0...5 {
            let v = lo + (hi - lo) * Double(i) / 5
            out += "<line x1=\"\(f(left))\" y1=\"\(f(y(v)))\" x2=\"\(f(width - right))\" y2=\"\(f(y(v)))\" stroke=\"#e5e5e5\"/>"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.3f", v))</text>\n"
            let s = maxStep * Double(i) / 5
            out += "<text x=\"\(f(x(s)))\" y=\"\(f(height - bottom + 18))\" text-anchor=\"middle\">\(Int(s.rounded()))</text>\n"
        }
        out += "<line x1=\"\(f(left))\" y1=\"\(f(height - bottom))\" x2=\"\(f(width - right))\" y2=\"\(f(height - bottom))\" stroke=\"black\"/>"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(height - bottom))\" stroke=\"black\"/>\n"
        out += "<text x=\"\(f((left + width - right) / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\">step</text>"
        out += "<text x=\"18\" y=\"\(f((top + height - bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(f((top + height - bottom) / 2)))\">loss (nats/token)</text>\n"
        func polyline(_ pts: [(Double, Double)], color: String, width w: Double) -> String {
            let p = pts.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ")
            return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"\(w)\" points=\"\(p)\"/>\n"
        }
        if !train.isEmpty { out += polyline(train, color: "#1f77b4", width: 1.2) }
        if !val.isEmpty {
            out += polyline(val, color: "#d62728", width: 2)
            for (s, v) in val { out += "<circle cx=\"\(f(x(s)))\" cy=\"\(f(y(v)))\" r=\"3\" fill=\"#d62728\"/>" }
            if let best = val.min(by: { $0.1 < $1.1 }) {
                out += "\n<text x=\"\(f(x(best.0)))\" y=\"\(f(y(best.1) - 8))\" text-anchor=\"middle\" fill=\"#d62728\">best \(String(format: "%.4f", best.1)) @ \(Int(best.0))</text>\n"
            }
        }
        // Legend.
        out += "<line x1=\"\(f(width - 190))\" y1=\"\(f(top + 10))\" x2=\"\(f(width - 165))\" y2=\"\(f(top + 10))\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"\(f(width - 160))\" y=\"\(f(top + 14))\">train loss</text>"
        out += "<line x1=\"\(f(width - 190))\" y1=\"\(f(top + 28))\" x2=\"\(f(width - 165))\" y2=\"\(f(top + 28))\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"\(f(width - 160))\" y=\"\(f(top + 32))\">validation loss</text>\n"
        return out + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Writes the plot of `records` to `path` atomically.
    public static func write(_ records: [StepRecord], title: String, to path: String) throws {
        try FileIO.writeString(svg(records, title: title), to: path)
    }
}
