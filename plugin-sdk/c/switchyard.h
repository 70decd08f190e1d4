/*
 * switchyard.h: write switchyard handler plugins in C (plugin ABI v1, see
 * ../ABI.md). A single header: include it everywhere, and in exactly one .c
 * file define SWITCHYARD_IMPLEMENTATION before including it.
 *
 * The plugin defines the handler; the header's implementation exports
 * `switchyard_alloc`, `switchyard_init` and `switchyard_handle` around it:
 *
 *     #define SWITCHYARD_IMPLEMENTATION
 *     #include "switchyard.h"
 *
 *     // Called once per event with the envelope JSON (`len` bytes, followed
 *     // by a NUL). Return 0 when handled, non-zero to fail the invocation.
 *     int switchyard_on_event(const char *json, size_t len) {
 *         switchyard_json ev, name;
 *         if (switchyard_json_parse(json, len, &ev) != 0)
 *             return switchyard_fail("malformed event JSON");
 *         switchyard_json_get(ev, "name", &name);
 *         switchyard_logf(SWITCHYARD_INFO, "got %.*s", (int)name.len, name.ptr);
 *         return 0;
 *     }
 *
 * Optionally define `int switchyard_on_init(const char *config, size_t len)`
 * to check the config once per instance (non-zero fails the invocation);
 * `switchyard_config()` returns it at any time. An instance may serve many
 * events (`instance = "reuse"`, the default) or one: rely on no state
 * between events, and free what you allocate per event.
 *
 * Build (reactor model, so that `_initialize` runs libc's constructors; a
 * 1 MiB stack, as zig's default of 16 MiB is half the default memory cap):
 *
 *     python3 -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -Os \
 *         -Wl,-z,stack-size=1048576 -I plugin-sdk/c -o plugin.wasm plugin.c
 *     clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -Os ...
 *
 * Command plugins (`main`, event on stdin, see ABI.md) can use the JSON
 * helpers too: define SWITCHYARD_COMMAND before including the header, and
 * no handler exports are generated; switchyard_config() then reads the
 * SWITCHYARD_CONFIG environment variable.
 *
 * JSON helpers: `switchyard_json` is a view of one JSON value's text inside a
 * buffer the caller keeps alive. `switchyard_json_parse` checks the complete
 * grammar (nesting at most SWITCHYARD_JSON_MAX_DEPTH; UTF-8 is not checked)
 * and every other helper is bounds-checked, so malformed input yields an
 * error code, never an out-of-bounds read. `switchyard_buf` builds JSON into
 * a fixed buffer and records overflow instead of writing past it.
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ABI constants (plugin-sdk/src/abi.rs) ------------------------------ */
#define SWITCHYARD_ABI_VERSION 1
#define SWITCHYARD_TRACE 0
#define SWITCHYARD_DEBUG 1
#define SWITCHYARD_INFO 2
#define SWITCHYARD_WARN 3
#define SWITCHYARD_ERROR 4
#define SWITCHYARD_EMIT_OK 0
#define SWITCHYARD_EMIT_MALFORMED (-1) /* not a JSON object with a valid name */
#define SWITCHYARD_EMIT_TOO_MANY (-2)  /* over max_emits for this invocation */
#define SWITCHYARD_EMIT_TOO_LARGE (-3) /* over max_emit_bytes */
#define SWITCHYARD_EMIT_CASCADE_LIMIT (-4) /* over the root event's cascade budget (ABI 1.1) */
#define SWITCHYARD_MAX_MESSAGE_BYTES (16 * 1024)

/* ---- Host imports, module "switchyard" ----------------------------------- */
#define SWITCHYARD_IMPORT(name) \
    __attribute__((import_module("switchyard"), import_name(name)))
SWITCHYARD_IMPORT("log") void switchyard_host_log(int32_t level, const void *ptr, size_t len);
SWITCHYARD_IMPORT("emit") int32_t switchyard_host_emit(const void *ptr, size_t len);
SWITCHYARD_IMPORT("fail") void switchyard_host_fail(const void *ptr, size_t len);

/* ---- What the plugin defines (handler plugins) -------------------------- */
int switchyard_on_event(const char *json, size_t len);
/* Optional: left undefined, the config is accepted as is. */
__attribute__((weak)) int switchyard_on_init(const char *config, size_t len);

/* ---- Logging, emitting, failing ----------------------------------------- */
/* Logs a NUL-terminated message, or a printf-formatted one (up to 4 KiB). */
void switchyard_log(int level, const char *message);
void switchyard_logf(int level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Emits `{"name": ..., "data": ...}` JSON; returns a SWITCHYARD_EMIT_ code. */
int switchyard_emit(const char *json, size_t len);
/* Sets the failure message and returns 1, so `return switchyard_fail(..)`
 * fails the invocation. */
int switchyard_fail(const char *message);
int switchyard_failf(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* The plugin's config JSON, NUL-terminated: what switchyard_init received,
 * or with SWITCHYARD_COMMAND the SWITCHYARD_CONFIG variable; "{}" if none. */
const char *switchyard_config(size_t *len);

/* ---- JSON reading --------------------------------------------------------- */
#ifndef SWITCHYARD_JSON_MAX_DEPTH
#define SWITCHYARD_JSON_MAX_DEPTH 128
#endif

typedef enum {
    SWITCHYARD_JSON_INVALID = 0,
    SWITCHYARD_JSON_NULL,
    SWITCHYARD_JSON_BOOL,
    SWITCHYARD_JSON_NUMBER,
    SWITCHYARD_JSON_STRING,
    SWITCHYARD_JSON_ARRAY,
    SWITCHYARD_JSON_OBJECT
} switchyard_json_type;

/* One JSON value: its text, `ptr[0..len)`, quotes and brackets included. */
typedef struct {
    const char *ptr;
    size_t len;
} switchyard_json;

/* Checks that `text` is exactly one JSON value (surrounding whitespace
 * allowed) and sets `*out` to it. Returns 0, or -1 if it is not valid JSON. */
int switchyard_json_parse(const char *text, size_t len, switchyard_json *out);
switchyard_json_type switchyard_json_typeof(switchyard_json value);
/* Looks up `key` in an object. Returns 1 and sets `*out` if found, else 0. */
int switchyard_json_get(switchyard_json object, const char *key, switchyard_json *out);
/* Iterates an array's elements or an object's members: start with
 * `*pos = 0`; each call returning 1 sets `*out` to the next value and, when
 * `key` is not NULL, `*key` to its key string (for an array element, an
 * empty value of type SWITCHYARD_JSON_INVALID). */
int switchyard_json_next(switchyard_json container, size_t *pos, switchyard_json *key,
                         switchyard_json *out);
/* Decodes a string value into `buf` (NUL-terminated, escapes resolved).
 * Returns its length, or -1 if `value` is not a string or does not fit. */
long switchyard_json_string(switchyard_json value, char *buf, size_t cap);
/* Compares a string value with `s`, after decoding. */
int switchyard_json_string_eq(switchyard_json value, const char *s);
/* Reads a number value. Returns 0, or -1 if `value` is not a number. */
int switchyard_json_number(switchyard_json value, double *out);

/* ---- JSON writing --------------------------------------------------------- */
typedef struct {
    char *ptr;
    size_t cap, len;
    int overflow; /* set once something did not fit; the text is then cut */
} switchyard_buf;

void switchyard_buf_init(switchyard_buf *b, char *mem, size_t cap);
/* Appends text as is (JSON punctuation, or a switchyard_json value). */
void switchyard_buf_raw(switchyard_buf *b, const char *text, size_t len);
void switchyard_buf_cstr(switchyard_buf *b, const char *text);
/* Appends `text` as a quoted, escaped JSON string. */
void switchyard_buf_string(switchyard_buf *b, const char *text, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* SWITCHYARD_H */

/* ========================================================================== */
#ifdef SWITCHYARD_IMPLEMENTATION
#ifndef SWITCHYARD_IMPLEMENTED
#define SWITCHYARD_IMPLEMENTED

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void switchyard_log(int level, const char *message) {
    switchyard_host_log(level, message, strlen(message));
}

void switchyard_logf(int level, const char *format, ...) {
    char line[4096];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n < 0) return;
    switchyard_host_log(level, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

int switchyard_emit(const char *json, size_t len) { return switchyard_host_emit(json, len); }

int switchyard_fail(const char *message) {
    switchyard_host_fail(message, strlen(message));
    return 1;
}

int switchyard_failf(const char *format, ...) {
    char message[4096];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(message, sizeof message, format, args);
    va_end(args);
    if (n < 0) return switchyard_fail(format);
    switchyard_host_fail(message, (size_t)n < sizeof message ? (size_t)n : sizeof message - 1);
    return 1;
}

#ifdef SWITCHYARD_COMMAND
const char *switchyard_config(size_t *len) {
    const char *config = getenv("SWITCHYARD_CONFIG");
    if (!config || !*config) config = "{}";
    if (len) *len = strlen(config);
    return config;
}
#else
static char *switchyard__config; /* the buffer passed to switchyard_init */
static size_t switchyard__config_len;

const char *switchyard_config(size_t *len) {
    if (len) *len = switchyard__config ? switchyard__config_len : 2;
    return switchyard__config ? switchyard__config : "{}";
}

/* Buffers hold one extra NUL byte, so C code can treat the JSON as a string. */
__attribute__((export_name("switchyard_alloc"))) void *switchyard_alloc(size_t len) {
    if (len == SIZE_MAX) return NULL;
    char *p = malloc(len + 1);
    if (p) p[len] = '\0';
    return p;
}

__attribute__((export_name("switchyard_init"))) int32_t switchyard_init(char *ptr, size_t len) {
    free(switchyard__config);
    switchyard__config = ptr;
    switchyard__config_len = len;
    return switchyard_on_init ? switchyard_on_init(ptr, len) : 0;
}

__attribute__((export_name("switchyard_handle"))) int32_t switchyard_handle(char *ptr, size_t len) {
    int result = switchyard_on_event(ptr, len);
    free(ptr);
    return result;
}
#endif /* SWITCHYARD_COMMAND */

/* ---- JSON reading ------------------------------------------------------- */
static const char *switchyard__ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int switchyard__hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Past the string starting at `p` (on its quote), or NULL if invalid. */
static const char *switchyard__skip_string(const char *p, const char *end) {
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c != '\\') continue;
        if (++p >= end) return NULL;
        if (*p == 'u') {
            if (end - p < 5) return NULL;
            for (int i = 1; i <= 4; i++)
                if (switchyard__hex(p[i]) < 0) return NULL;
            p += 4;
        } else if (*p == '\0' || !strchr("\"\\/bfnrt", *p)) {
            return NULL;
        }
    }
    return NULL;
}

static const char *switchyard__digits(const char *p, const char *end) {
    const char *start = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    return p > start ? p : NULL;
}

static const char *switchyard__skip_number(const char *p, const char *end) {
    if (p < end && *p == '-') p++;
    if (p < end && *p == '0') p++;
    else if (!(p = switchyard__digits(p, end))) return NULL;
    if (p < end && *p == '.' && !(p = switchyard__digits(p + 1, end))) return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!(p = switchyard__digits(p, end))) return NULL;
    }
    return p;
}

static const char *switchyard__skip_value(const char *p, const char *end, int depth);

/* Past the array or object at `p`, or NULL if invalid. */
static const char *switchyard__skip_container(const char *p, const char *end, int depth) {
    char close = *p == '[' ? ']' : '}';
    if (depth >= SWITCHYARD_JSON_MAX_DEPTH) return NULL;
    p = switchyard__ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
        if (close == '}') {
            if (p >= end || *p != '"' || !(p = switchyard__skip_string(p, end))) return NULL;
            p = switchyard__ws(p, end);
            if (p >= end || *p != ':') return NULL;
            p = switchyard__ws(p + 1, end);
        }
        if (!(p = switchyard__skip_value(p, end, depth + 1))) return NULL;
        p = switchyard__ws(p, end);
        if (p < end && *p == close) return p + 1;
        if (p >= end || *p != ',') return NULL;
        p = switchyard__ws(p + 1, end);
    }
}

static const char *switchyard__literal(const char *p, const char *end, const char *word) {
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* Past the value at `p`, or NULL if invalid. */
static const char *switchyard__skip_value(const char *p, const char *end, int depth) {
    if (p >= end) return NULL;
    switch (*p) {
    case '"': return switchyard__skip_string(p, end);
    case '{':
    case '[': return switchyard__skip_container(p, end, depth);
    case 't': return switchyard__literal(p, end, "true");
    case 'f': return switchyard__literal(p, end, "false");
    case 'n': return switchyard__literal(p, end, "null");
    default: return switchyard__skip_number(p, end);
    }
}

int switchyard_json_parse(const char *text, size_t len, switchyard_json *out) {
    const char *end = text + len;
    const char *start = switchyard__ws(text, end);
    const char *stop = switchyard__skip_value(start, end, 0);
    if (!stop || switchyard__ws(stop, end) != end) return -1;
    out->ptr = start;
    out->len = (size_t)(stop - start);
    return 0;
}

switchyard_json_type switchyard_json_typeof(switchyard_json v) {
    if (!v.ptr || v.len == 0) return SWITCHYARD_JSON_INVALID;
    switch (v.ptr[0]) {
    case 'n': return SWITCHYARD_JSON_NULL;
    case 't':
    case 'f': return SWITCHYARD_JSON_BOOL;
    case '"': return SWITCHYARD_JSON_STRING;
    case '[': return SWITCHYARD_JSON_ARRAY;
    case '{': return SWITCHYARD_JSON_OBJECT;
    default: return SWITCHYARD_JSON_NUMBER;
    }
}

int switchyard_json_next(switchyard_json c, size_t *pos, switchyard_json *key,
                         switchyard_json *out) {
    switchyard_json_type type = switchyard_json_typeof(c);
    if (type != SWITCHYARD_JSON_ARRAY && type != SWITCHYARD_JSON_OBJECT) return 0;
    const char *end = c.ptr + c.len, *p = c.ptr + (*pos ? *pos : 1);
    if (p >= end) return 0;
    p = switchyard__ws(p, end);
    if (p < end && *p == ',') p = switchyard__ws(p + 1, end);
    if (p >= end || *p == ']' || *p == '}') return 0;
    if (key) *key = (switchyard_json){NULL, 0};
    if (type == SWITCHYARD_JSON_OBJECT) {
        const char *k = p;
        if (*p != '"' || !(p = switchyard__skip_string(p, end))) return 0;
        if (key) *key = (switchyard_json){k, (size_t)(p - k)};
        p = switchyard__ws(p, end);
        if (p >= end || *p != ':') return 0;
        p = switchyard__ws(p + 1, end);
    }
    const char *v = p;
    if (!(p = switchyard__skip_value(p, end, 1))) return 0;
    *out = (switchyard_json){v, (size_t)(p - v)};
    *pos = (size_t)(p - c.ptr);
    return 1;
}

int switchyard_json_get(switchyard_json object, const char *key, switchyard_json *out) {
    switchyard_json k, v;
    size_t pos = 0;
    if (switchyard_json_typeof(object) != SWITCHYARD_JSON_OBJECT) return 0;
    while (switchyard_json_next(object, &pos, &k, &v)) {
        if (switchyard_json_string_eq(k, key)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* `cp` as UTF-8 into `out` (4 bytes); returns the length. */
static size_t switchyard__utf8(unsigned long cp, char *out) {
    size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = len - 1; i > 0; i--, cp >>= 6) out[i] = (char)(0x80 | (cp & 0x3F));
    out[0] = (char)(lead[len] | cp);
    return len;
}

static unsigned long switchyard__u4(const char *p) {
    return (unsigned long)(switchyard__hex(p[0]) << 12 | switchyard__hex(p[1]) << 8 |
                           switchyard__hex(p[2]) << 4 | switchyard__hex(p[3]));
}

/* Decodes the next character of a validated string body `[p, end)` into
 * `out` (UTF-8, up to 4 bytes); returns the length and advances `*p`. */
static size_t switchyard__next_char(const char **p, const char *end, char *out) {
    const char *q = *p;
    char c = *q++;
    if (c != '\\') {
        *p = q;
        out[0] = c;
        return 1;
    }
    char e = *q++;
    if (e != 'u') {
        *p = q;
        out[0] = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
               : e == 't' ? '\t' : e;
        return 1;
    }
    unsigned long cp = switchyard__u4(q);
    q += 4;
    if (cp >= 0xD800 && cp < 0xDC00 && end - q >= 6 && q[0] == '\\' && q[1] == 'u') {
        unsigned long lo = switchyard__u4(q + 2);
        if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            q += 6;
        }
    }
    if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate */
    *p = q;
    return switchyard__utf8(cp, out);
}

/* The body of a string value, if it is a valid one. */
static int switchyard__string_body(switchyard_json v, const char **p, const char **end) {
    if (switchyard_json_typeof(v) != SWITCHYARD_JSON_STRING) return 0;
    if (switchyard__skip_string(v.ptr, v.ptr + v.len) != v.ptr + v.len) return 0;
    *p = v.ptr + 1;
    *end = v.ptr + v.len - 1;
    return 1;
}

long switchyard_json_string(switchyard_json v, char *buf, size_t cap) {
    const char *p, *end;
    size_t n = 0;
    if (!switchyard__string_body(v, &p, &end)) return -1;
    while (p < end) {
        char ch[4];
        size_t len = switchyard__next_char(&p, end, ch);
        if (len >= cap - n) return -1;
        memcpy(buf + n, ch, len);
        n += len;
    }
    if (n >= cap) return -1;
    buf[n] = '\0';
    return (long)n;
}

int switchyard_json_string_eq(switchyard_json v, const char *s) {
    const char *p, *end;
    size_t want = strlen(s), n = 0;
    if (!switchyard__string_body(v, &p, &end)) return 0;
    while (p < end) {
        char ch[4];
        size_t len = switchyard__next_char(&p, end, ch);
        if (len > want - n || memcmp(s + n, ch, len) != 0) return 0;
        n += len;
    }
    return n == want;
}

int switchyard_json_number(switchyard_json v, double *out) {
    char tmp[64];
    if (switchyard_json_typeof(v) != SWITCHYARD_JSON_NUMBER || v.len >= sizeof tmp) return -1;
    if (switchyard__skip_number(v.ptr, v.ptr + v.len) != v.ptr + v.len) return -1;
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = '\0';
    *out = strtod(tmp, NULL);
    return 0;
}

/* ---- JSON writing ------------------------------------------------------- */
void switchyard_buf_init(switchyard_buf *b, char *mem, size_t cap) {
    b->ptr = mem;
    b->cap = cap;
    b->len = 0;
    b->overflow = cap == 0;
    if (cap) mem[0] = '\0';
}

void switchyard_buf_raw(switchyard_buf *b, const char *text, size_t len) {
    if (b->overflow || len >= b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    memcpy(b->ptr + b->len, text, len);
    b->len += len;
    b->ptr[b->len] = '\0';
}

void switchyard_buf_cstr(switchyard_buf *b, const char *text) {
    switchyard_buf_raw(b, text, strlen(text));
}

void switchyard_buf_string(switchyard_buf *b, const char *text, size_t len) {
    static const char hex[] = "0123456789abcdef";
    switchyard_buf_raw(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        if (c == '"' || c == '\\') switchyard_buf_raw(b, esc, 2);
        else if (c == '\n') switchyard_buf_raw(b, "\\n", 2);
        else if (c == '\r') switchyard_buf_raw(b, "\\r", 2);
        else if (c == '\t') switchyard_buf_raw(b, "\\t", 2);
        else if (c < 0x20) {
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            switchyard_buf_raw(b, esc, 6);
        } else switchyard_buf_raw(b, (const char *)&c, 1);
    }
    switchyard_buf_raw(b, "\"", 1);
}

#endif /* SWITCHYARD_IMPLEMENTED */
#endif /* SWITCHYARD_IMPLEMENTATION */
