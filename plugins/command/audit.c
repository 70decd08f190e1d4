/*
 * audit: a command plugin (a WASI program: no exports, no SDK ABI). It
 * reads the event from stdin and writes a balog-style audit record to
 * stdout, which the host emits: who sent which event, of which schema
 * version, with which data keys, but not the data itself.
 *
 * Config (router.toml), given in the environment as SWITCHYARD_CONFIG:
 *
 *     [plugin.audit]
 *     config = { require_version = true, emit = "audit.Recorded" }
 *
 * With `require_version`, an event without a schema version fails: the
 * message on stderr, exit code 1. `emit` defaults to "audit.Recorded".
 *
 * Protocol (ABI.md, "Command plugins"): a stdout line that is a JSON object
 * is an emitted event, any other stdout line an info log line, a stderr line
 * a warn log line; the exit code is the outcome. It uses switchyard.h only
 * for its JSON reader (SWITCHYARD_COMMAND: no handler exports).
 */
#define SWITCHYARD_COMMAND
#define SWITCHYARD_IMPLEMENTATION
#include "switchyard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENT (8u << 20)

/* Reads all of stdin into a NUL-terminated buffer; NULL if too large. */
static char *read_stdin(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, stdin);
        if (feof(stdin) || ferror(stdin)) break;
        if (cap >= MAX_EVENT) { free(buf); return NULL; }
        char *bigger = realloc(buf, cap *= 2);
        if (!bigger) free(buf);
        buf = bigger;
    }
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

/* Writes `text` as one line: raw newlines in valid JSON are whitespace. */
static void put_line(const char *text, size_t len) {
    for (size_t i = 0; i < len; i++) putchar(text[i] == '\n' || text[i] == '\r' ? ' ' : text[i]);
    putchar('\n');
}

/* A string value for log lines: decoded, or "?" (too long, not a string). */
static const char *text(switchyard_json v, char *buf, size_t cap) {
    return switchyard_json_string(v, buf, cap) >= 0 ? buf : "?";
}

static char out[64 * 1024];

int main(void) {
    size_t len, config_len;
    char *input = read_stdin(&len);
    const char *config_text = switchyard_config(&config_len);
    switchyard_json ev, config, name, id = {"null", 4}, version, data, v, key;
    char name_text[256], id_text[64];

    if (switchyard_json_parse(config_text, config_len, &config) != 0) {
        fprintf(stderr, "audit: SWITCHYARD_CONFIG is not valid JSON\n");
        return 1;
    }
    if (!input || switchyard_json_parse(input, len, &ev) != 0 || !switchyard_json_get(ev, "name", &name)) {
        fprintf(stderr, "audit: malformed event JSON on stdin\n");
        return 1;
    }
    switchyard_json_get(ev, "id", &id);
    int has_version = switchyard_json_get(ev, "version", &version) &&
                      switchyard_json_typeof(version) == SWITCHYARD_JSON_STRING;
    int require = switchyard_json_get(config, "require_version", &v) && v.len == 4 &&
                  memcmp(v.ptr, "true", 4) == 0;
    if (require && !has_version) {
        fprintf(stderr, "audit: %s %s has no schema version\n", text(name, name_text, sizeof name_text),
                text(id, id_text, sizeof id_text));
        return 1;
    }

    switchyard_buf b;
    switchyard_buf_init(&b, out, sizeof out);
    switchyard_buf_cstr(&b, "{\"name\":");
    if (switchyard_json_get(config, "emit", &v) && switchyard_json_typeof(v) == SWITCHYARD_JSON_STRING)
        switchyard_buf_raw(&b, v.ptr, v.len);
    else
        switchyard_buf_cstr(&b, "\"audit.Recorded\"");
    switchyard_buf_cstr(&b, ",\"data\":{\"event\":");
    switchyard_buf_raw(&b, name.ptr, name.len);
    switchyard_buf_cstr(&b, ",\"id\":");
    switchyard_buf_raw(&b, id.ptr, id.len);
    switchyard_buf_cstr(&b, ",\"version\":");
    switchyard_buf_raw(&b, has_version ? version.ptr : "null", has_version ? version.len : 4);
    static const char *copied[] = {"source", "time", "meta"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++) {
        if (!switchyard_json_get(ev, copied[i], &v)) continue;
        switchyard_buf_cstr(&b, ",\"");
        switchyard_buf_cstr(&b, copied[i]);
        switchyard_buf_cstr(&b, "\":");
        switchyard_buf_raw(&b, v.ptr, v.len);
    }
    switchyard_buf_cstr(&b, ",\"data_keys\":[");
    size_t pos = 0, keys = 0;
    if (switchyard_json_get(ev, "data", &data))
        while (switchyard_json_next(data, &pos, &key, &v)) {
            if (keys++) switchyard_buf_raw(&b, ",", 1);
            switchyard_buf_raw(&b, key.ptr, key.len);
        }
    switchyard_buf_cstr(&b, "]}}");
    if (b.overflow) {
        fprintf(stderr, "audit: record over %zu bytes\n", sizeof out);
        return 1;
    }
    put_line(b.ptr, b.len);
    printf("audit: recorded %s %s\n", text(name, name_text, sizeof name_text),
           text(id, id_text, sizeof id_text));
    free(input);
    return 0;
}
