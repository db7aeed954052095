// Calls libsentencepiece (the system library swift-lm links) directly: encode every line of a
// file, one thread, and print one JSON line with MB/s. The "no wrapper" baseline for
// SentencePieceTokenizer. Build: c++ -O2 -std=c++17 direct_sentencepiece.cpp -lsentencepiece
#include <sentencepiece_processor.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL TEXT [REPS]\n", argv[0]);
    return 2;
  }
  const int reps = argc > 3 ? std::atoi(argv[3]) : 3;
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.Load(argv[1]);
  if (!status.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", argv[1], status.ToString().c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  long tokens = 0;
  auto pass = [&]() {
    const auto t0 = std::chrono::steady_clock::now();
    long n = 0;
    std::vector<int> ids;
    for (const auto &line : lines) {
      ids.clear();
      sp.Encode(line, &ids);
      n += ids.size();
    }
    tokens = n;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  pass();
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) rates.push_back(text.size() / 1e6 / pass());
  std::sort(rates.begin(), rates.end());
  std::printf("{\"lines\": %zu, \"tokens\": %ld, \"encode_MBps\": {\"min\": %.2f, \"median\": %.2f, \"max\": %.2f}}\n",
              lines.size(), tokens, rates.front(), rates[rates.size() / 2], rates.back());
  return 0;
}
