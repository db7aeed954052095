// The extern "C" API over libsentencepiece declared in include/csentencepiece.h.
// Every entry point catches all C++ exceptions and converts non-OK statuses into messages.
#include "csentencepiece.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

struct csp_processor {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

char *copy_message(const std::string &message) {
  char *out = static_cast<char *>(std::malloc(message.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, message.data(), message.size());
    out[message.size()] = '\0';
  }
  return out;
}

void set_error(char **error, const std::string &message) {
  if (error != nullptr) *error = copy_message(message);
}

bool status_ok(const sentencepiece::util::Status &status, char **error) {
  if (status.ok()) return true;
  set_error(error, status.ToString());
  return false;
}

bool valid_id(const csp_processor *p, int32_t id) {
  return p != nullptr && id >= 0 && id < p->sp.GetPieceSize();
}

thread_local std::vector<int> tl_ids;
thread_local std::vector<std::string> tl_pieces;
thread_local std::string tl_piece_bytes;
thread_local std::vector<size_t> tl_piece_lengths;
thread_local std::string tl_text;

}  // namespace

extern "C" {

void csp_string_free(char *message) { std::free(message); }

void csp_bytes_free(void *bytes) { std::free(bytes); }

csp_processor *csp_load_bytes(const void *data, size_t size, char **error) {
  try {
    auto *p = new csp_processor();
    auto status = p->sp.LoadFromSerializedProto(
        absl::string_view(static_cast<const char *>(data), size));
    if (!status_ok(status, error)) {
      delete p;
      return nullptr;
    }
    return p;
  } catch (const std::exception &e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception while loading the model");
  }
  return nullptr;
}

csp_processor *csp_load_file(const char *path, char **error) {
  try {
    auto *p = new csp_processor();
    auto status = p->sp.Load(absl::string_view(path));
    if (!status_ok(status, error)) {
      delete p;
      return nullptr;
    }
    return p;
  } catch (const std::exception &e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception while loading the model");
  }
  return nullptr;
}

void csp_processor_free(csp_processor *processor) { delete processor; }

int32_t csp_piece_size(const csp_processor *p) { return p ? p->sp.GetPieceSize() : 0; }

int32_t csp_piece_to_id(const csp_processor *p, const char *piece, size_t length) {
  if (p == nullptr) return -1;
  return p->sp.PieceToId(absl::string_view(piece, length));
}

const char *csp_id_to_piece(const csp_processor *p, int32_t id, size_t *length) {
  if (!valid_id(p, id)) return nullptr;
  const std::string &piece = p->sp.IdToPiece(id);
  *length = piece.size();
  return piece.data();
}

float csp_score(const csp_processor *p, int32_t id) {
  return valid_id(p, id) ? p->sp.GetScore(id) : 0.0f;
}

int32_t csp_piece_type(const csp_processor *p, int32_t id) {
  if (!valid_id(p, id)) return 0;
  if (p->sp.IsUnknown(id)) return 2;
  if (p->sp.IsControl(id)) return 3;
  if (p->sp.IsUnused(id)) return 5;
  if (p->sp.IsByte(id)) return 6;
  return 1;
}

int32_t csp_unk_id(const csp_processor *p) { return p ? p->sp.unk_id() : -1; }
int32_t csp_bos_id(const csp_processor *p) { return p ? p->sp.bos_id() : -1; }
int32_t csp_eos_id(const csp_processor *p) { return p ? p->sp.eos_id() : -1; }
int32_t csp_pad_id(const csp_processor *p) { return p ? p->sp.pad_id() : -1; }

const int32_t *csp_encode_ids(const csp_processor *p, const char *text, size_t length,
                              size_t *count, char **error) {
  static_assert(sizeof(int) == sizeof(int32_t), "ids are 32-bit");
  try {
    tl_ids.clear();
    if (!status_ok(p->sp.Encode(absl::string_view(text, length), &tl_ids), error)) return nullptr;
    *count = tl_ids.size();
    // A non-NULL pointer even for zero ids, so the caller can tell success from failure.
    return tl_ids.empty() ? reinterpret_cast<const int32_t *>(&tl_ids) : tl_ids.data();
  } catch (const std::exception &e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception while encoding");
  }
  return nullptr;
}

const size_t *csp_encode_pieces(const csp_processor *p, const char *text, size_t length,
                                const char **bytes, size_t *count, char **error) {
  try {
    tl_pieces.clear();
    if (!status_ok(p->sp.Encode(absl::string_view(text, length), &tl_pieces), error)) return nullptr;
    tl_piece_bytes.clear();
    tl_piece_lengths.clear();
    for (const auto &piece : tl_pieces) {
      tl_piece_bytes += piece;
      tl_piece_lengths.push_back(piece.size());
    }
    *bytes = tl_piece_bytes.data();
    *count = tl_piece_lengths.size();
    return tl_piece_lengths.empty() ? reinterpret_cast<const size_t *>(&tl_piece_lengths)
                                    : tl_piece_lengths.data();
  } catch (const std::exception &e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception while encoding");
  }
  return nullptr;
}

const char *csp_decode_ids(const csp_processor *p, const int32_t *ids, size_t count,
                           size_t *length, char **error) {
  try {
    for (size_t i = 0; i < count; ++i) {
      if (!valid_id(p, ids[i])) {
        set_error(error, "token id " + std::to_string(ids[i]) + " is out of range [0, " +
                             std::to_string(csp_piece_size(p)) + ")");
        return nullptr;
      }
    }
    std::vector<int> v(ids, ids + count);
    tl_text.clear();
    if (!status_ok(p->sp.Decode(v, &tl_text), error)) return nullptr;
    *length = tl_text.size();
    return tl_text.data();
  } catch (const std::exception &e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception while decoding");
  }
  return nullptr;
}

void *csp_train(const char *const *keys, const char *const *values, size_t count, size_t *size,
                char **error) {
  try {
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < count; ++i) kwargs[keys[i]] = values[i];
    std::string model;
    auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, nullptr, &model);
    if (!status_ok(status, error)) return nullptr;
    void *out = std::malloc(model.size() > 0 ? model.size() : 1);
    if (out == nullptr) {
      set_error(error, "out of memory copying the trained model");
      return nullptr;
    }
    std::memcpy(out, model.data(), model.size());
    *size = model.size();
    return out;
  } catch (const std::exception &e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception while training");
  }
  return nullptr;
}

}  // extern "C"
