import Foundation
import LMCore
import LMTestSupport
import LMTraining
import XCTest

/// Scores and comparisons of classifiers on labelled examples (`lm eval --tsv`,
/// `lm quantize --report --tsv`): values worked out by hand.
final class ClassifierEvaluationTests: XCTestCase {
    let labels = ["negative", "positive"]

    func testScoresPredictTheMostLikelyClassWithLowestIndexOnTies() {
        let s = ClassifierScores(logits: [[0, 0], [2, 0], [0, 1]], truth: [0, 0, 1], labels: labels)
        XCTAssertEqual(s.predicted, [0, 0, 1])
        XCTAssertEqual(s.metrics.accuracy, 1)
        XCTAssertEqual(s.logProbabilities[0][0], -log(2), accuracy: 1e-15)
        XCTAssertEqual(s.logProbabilities[2][1], -log(1 + exp(-1)), accuracy: 1e-15)
    }

    func testComparisonKLAgreementAndAccuracyChangeMatchHandComputedValues() {
        let truth = [0, 0, 1]
        let reference = ClassifierScores(logits: [[0, 0], [2, 0], [0, 1]], truth: truth, labels: labels)
        let candidate = ClassifierScores(logits: [[0, Float(log(3.0))], [2, 0], [1, 0]], truth: truth, labels: labels)
        let c = ClassifierComparison(reference: reference, candidate: candidate)
        // Row 0: KL([½, ½] ‖ [¼, ¾]) = ½ ln(4/3); row 1: 0; row 2: the two swapped, (e − 1)/(e + 1).
        let e = M_E
        XCTAssertEqual(c.meanKLD, (0.5 * log(4.0 / 3) + (e - 1) / (e + 1)) / 3, accuracy: 1e-7)
        XCTAssertEqual(c.top1Agreement, 1.0 / 3, accuracy: 1e-15)
        XCTAssertEqual(candidate.metrics.accuracy, 1.0 / 3, accuracy: 1e-15)
        XCTAssertEqual(c.accuracyChangePoints, -200.0 / 3, accuracy: 1e-12)
        // A model against itself.
        let same = ClassifierComparison(reference: reference, candidate: reference)
        XCTAssertEqual(same.meanKLD, 0)
        XCTAssertEqual(same.top1Agreement, 1)
    }
}
