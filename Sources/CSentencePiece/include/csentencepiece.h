// CSentencePiece: a small extern "C" API over libsentencepiece (C++).
//
// Swift cannot import the sentencepiece C++ headers on this toolchain, so this shim is the only
// place that touches them. Rules:
// - No function throws or aborts: every C++ exception and every non-OK util::Status becomes a
//   return value plus an error message (malloc'd; free it with csp_string_free).
// - Buffers returned by csp_encode_* / csp_decode_* live in thread-local storage and stay valid
//   until the next call of the same function on the same thread; copy them out at once.
// - Option validation that prevents the library's own CHECK() aborts is done by the Swift caller
//   (LMTokenizers/SentencePieceTrainer.swift) before csp_train is called.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An opaque loaded SentencePiece model (a sentencepiece::SentencePieceProcessor).
typedef struct csp_processor csp_processor;

/// Frees a message returned through an `error` out-parameter.
void csp_string_free(char *message);

/// Loads a serialized model (the bytes of a `.model` file). Returns NULL and sets *error on failure.
csp_processor *csp_load_bytes(const void *data, size_t size, char **error);

/// Loads a `.model` file. Returns NULL and sets *error on failure.
csp_processor *csp_load_file(const char *path, char **error);

void csp_processor_free(csp_processor *processor);

int32_t csp_piece_size(const csp_processor *processor);
/// Returns the id of `piece` (UTF-8, `length` bytes), or the unknown id when it is not in the vocabulary.
int32_t csp_piece_to_id(const csp_processor *processor, const char *piece, size_t length);
/// Returns the piece of `id` (not NUL-terminated; *length bytes), valid while the processor lives.
/// Returns NULL for an id out of range.
const char *csp_id_to_piece(const csp_processor *processor, int32_t id, size_t *length);
float csp_score(const csp_processor *processor, int32_t id);
/// Piece types: 1 normal (or user defined), 2 unknown, 3 control, 5 unused, 6 byte; 0 for an id out of range.
int32_t csp_piece_type(const csp_processor *processor, int32_t id);
int32_t csp_unk_id(const csp_processor *processor);
int32_t csp_bos_id(const csp_processor *processor);
int32_t csp_eos_id(const csp_processor *processor);
int32_t csp_pad_id(const csp_processor *processor);

/// Encodes `length` bytes of UTF-8 text into ids. Returns a thread-local buffer of *count ids,
/// or NULL with *error set.
const int32_t *csp_encode_ids(const csp_processor *processor, const char *text, size_t length,
                              size_t *count, char **error);

/// Encodes text into pieces: the pieces' bytes are concatenated into *bytes (thread-local) and
/// *count lengths are stored in the returned thread-local array (NULL with *error on failure).
const size_t *csp_encode_pieces(const csp_processor *processor, const char *text, size_t length,
                                const char **bytes, size_t *count, char **error);

/// Decodes ids into UTF-8 text (*length bytes, thread-local; NULL with *error on failure).
/// Every id must be in [0, piece size).
const char *csp_decode_ids(const csp_processor *processor, const int32_t *ids, size_t count,
                           size_t *length, char **error);

/// Trains a model. `keys`/`values` are `count` trainer options in sentencepiece's flag spelling
/// (input, vocab_size, model_type, minloglevel, ...). On success returns the serialized model in a malloc'd
/// buffer of *size bytes (free with csp_bytes_free); on failure NULL with *error set.
void *csp_train(const char *const *keys, const char *const *values, size_t count, size_t *size,
                char **error);
void csp_bytes_free(void *bytes);

#ifdef __cplusplus
}
#endif
