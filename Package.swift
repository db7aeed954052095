// swift-tools-version:6.1
import PackageDescription
import Foundation

// Kernels are written for AVX2 + FMA (loops auto-vectorise to 8-wide FMA). Override with
// LM_TARGET_CPU=x86-64 (portable, slower) or another LLVM CPU name.
let targetCPU = ProcessInfo.processInfo.environment["LM_TARGET_CPU"] ?? "haswell"
let optimized: [SwiftSetting] = [.unsafeFlags(["-target-cpu", targetCPU])]

// Dependencies point one way (see README "Layout"):
// CBLAS, CSentencePiece, CKernels → LMCore → LMTokenizers, LMModels → LMGeneration, LMTraining, LMQuant → lm
let package = Package(
    name: "swift-lm",
    products: [
        .executable(name: "lm", targets: ["lm"]),
        .library(name: "LMCore", targets: ["LMCore"]),
        .library(name: "LMTokenizers", targets: ["LMTokenizers"]),
        .library(name: "LMModels", targets: ["LMModels"]),
        .library(name: "LMGeneration", targets: ["LMGeneration"]),
        .library(name: "LMTraining", targets: ["LMTraining"]),
        .library(name: "LMQuant", targets: ["LMQuant"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System and C shims: nothing else lives here.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]
        ),
        // libedit: line editing and history for `lm chat` (see Sources/CLibEdit/shim.h).
        .systemLibrary(
            name: "CLibEdit",
            pkgConfig: "libedit",
            providers: [.apt(["libedit-dev"])]
        ),
        .target(
            name: "CSentencePiece",
            cxxSettings: [.unsafeFlags(["-std=c++17"])],
            linkerSettings: [
                .linkedLibrary("sentencepiece"),
                .linkedLibrary("sentencepiece_train"),
                .linkedLibrary("stdc++"),
            ]
        ),
        // Loops Swift cannot vectorise on Linux (sqrt, int8 widening products): see Sources/CKernels/include.
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O3", "-march=\(targetCPU)", "-mf16c", "-fno-math-errno", "-ffp-contract=off"])]
        ),
        .target(
            name: "LMCore",
            dependencies: ["CBLAS", "CKernels"],
            swiftSettings: optimized
        ),
        .target(
            name: "LMTokenizers",
            dependencies: ["LMCore", "CSentencePiece"],
            exclude: ["README.md"],
            swiftSettings: optimized
        ),
        .target(
            name: "LMModels",
            dependencies: ["LMCore", "CKernels"],
            swiftSettings: optimized
        ),
        .target(
            name: "LMGeneration",
            dependencies: ["LMCore", "LMModels", "LMTokenizers"],
            swiftSettings: optimized
        ),
        .target(
            name: "LMTraining",
            dependencies: ["LMCore", "LMModels", "LMTokenizers", "CKernels"],
            swiftSettings: optimized
        ),
        .target(
            name: "LMQuant",
            dependencies: ["LMCore", "LMModels", "LMTokenizers"],
            swiftSettings: optimized
        ),
        .executableTarget(
            name: "lm",
            dependencies: [
                "LMCore", "LMTokenizers", "LMModels", "LMGeneration", "LMTraining", "LMQuant", "CLibEdit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimized
        ),

        // Kernel micro-benchmarks (not part of the product).
        .executableTarget(
            name: "lm-kernel-bench",
            dependencies: ["LMCore"],
            path: "Benchmarks/KernelBench",
            swiftSettings: optimized
        ),

        // Tests mirror the modules; LMTestSupport holds tolerances, fixtures and helpers.
        .target(
            name: "LMTestSupport",
            dependencies: ["LMCore"],
            path: "Tests/LMTestSupport"
        ),
        .testTarget(name: "LMCoreTests", dependencies: ["LMCore", "CKernels", "LMTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LMTokenizersTests", dependencies: ["LMTokenizers", "LMTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LMModelsTests", dependencies: ["LMModels", "LMTokenizers", "LMTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LMGenerationTests", dependencies: ["LMGeneration", "LMTestSupport"]),
        .testTarget(name: "LMTrainingTests", dependencies: ["LMTraining", "LMTestSupport"]),
        .testTarget(name: "LMQuantTests", dependencies: ["LMQuant", "LMTestSupport"]),
        .testTarget(name: "lmTests", dependencies: ["LMTestSupport", "LMModels"]),
    ],
    swiftLanguageModes: [.v5]
)

