// libedit (BSD editline) for `lm chat`. Swift cannot call C variadic functions (el_set,
// el_get, history), so each use gets a fixed-argument wrapper here. Nothing else.
#ifndef LM_CLIBEDIT_SHIM_H
#define LM_CLIBEDIT_SHIM_H

#include <stdio.h>
#include <histedit.h>

/// The prompt is the client data string; `esc` brackets non-printing bytes (colours).
static char *lm_el_prompt_fn(EditLine *el) {
    void *text = NULL;
    el_get(el, EL_CLIENTDATA, &text);
    return text ? (char *)text : (char *)"";
}

/// Sets the prompt to `text` (kept by the caller until the next call); bytes between two
/// `esc` characters take no width.
static inline int lm_el_set_prompt(EditLine *el, const char *text, char esc) {
    el_set(el, EL_CLIENTDATA, (void *)text);
    return el_set(el, EL_PROMPT_ESC, lm_el_prompt_fn, esc);
}

static inline int lm_el_set_editor(EditLine *el, const char *mode) { return el_set(el, EL_EDITOR, mode); }
static inline int lm_el_set_history(EditLine *el, History *h) { return el_set(el, EL_HIST, history, h); }

static inline int lm_history_setsize(History *h, int n) { HistEvent ev; return history(h, &ev, H_SETSIZE, n); }
static inline int lm_history_setunique(History *h, int on) { HistEvent ev; return history(h, &ev, H_SETUNIQUE, on); }
static inline int lm_history_load(History *h, const char *path) { HistEvent ev; return history(h, &ev, H_LOAD, path); }
static inline int lm_history_save(History *h, const char *path) { HistEvent ev; return history(h, &ev, H_SAVE, path); }
static inline int lm_history_enter(History *h, const char *line) { HistEvent ev; return history(h, &ev, H_ENTER, line); }

#endif
