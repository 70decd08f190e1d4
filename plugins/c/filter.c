/*
 * filter: a filter and transform. Events whose `data` lacks the configured
 * field (or has it null) are dropped: handled, nothing emitted. The others
 * are re-emitted reshaped: only that field, the `keep` fields, and where
 * the data came from.
 *
 * Config (router.toml):
 *
 *     [plugin.filter]
 *     config = { field = "deal_id", keep = ["user_id"], emit = "deals.DealSeen" }
 *
 * `deals.DealClick {"deal_id": 7, "user_id": 42, "ua": "..."}` becomes
 * `deals.DealSeen {"deal_id": 7, "user_id": 42,
 *                  "from": {"name": "deals.DealClick", "id": "01J..."}}`.
 */
#define SWITCHYARD_IMPLEMENTATION
#include "switchyard.h"

#include <string.h>

static char field[256], emit_name[256];
static switchyard_json keep; /* array of strings, inside the kept config */
static char out[64 * 1024];

int switchyard_on_init(const char *config, size_t len) {
    switchyard_json cfg, v;
    if (switchyard_json_parse(config, len, &cfg) != 0 ||
        switchyard_json_typeof(cfg) != SWITCHYARD_JSON_OBJECT)
        return switchyard_fail("bad plugin config: not a JSON object");
    if (!switchyard_json_get(cfg, "field", &v) || switchyard_json_string(v, field, sizeof field) <= 0)
        return switchyard_fail("bad plugin config: \"field\" must be a non-empty string");
    if (!switchyard_json_get(cfg, "emit", &v) ||
        switchyard_json_string(v, emit_name, sizeof emit_name) <= 0)
        return switchyard_fail("bad plugin config: \"emit\" must be a non-empty string");
    keep = (switchyard_json){"[]", 2};
    if (switchyard_json_get(cfg, "keep", &keep)) {
        switchyard_json item;
        size_t pos = 0;
        if (switchyard_json_typeof(keep) != SWITCHYARD_JSON_ARRAY)
            return switchyard_fail("bad plugin config: \"keep\" must be an array of strings");
        while (switchyard_json_next(keep, &pos, NULL, &item))
            if (switchyard_json_typeof(item) != SWITCHYARD_JSON_STRING)
                return switchyard_fail("bad plugin config: \"keep\" must be an array of strings");
    }
    return 0;
}

/* Appends `"key":value` for data[key], if present. */
static void copy_member(switchyard_buf *b, switchyard_json data, const char *key) {
    switchyard_json v;
    if (!switchyard_json_get(data, key, &v)) return;
    switchyard_buf_string(b, key, strlen(key));
    switchyard_buf_raw(b, ":", 1);
    switchyard_buf_raw(b, v.ptr, v.len);
    switchyard_buf_raw(b, ",", 1);
}

/* A string value for log lines: decoded, or "?" (too long, not a string). */
static const char *text(switchyard_json v, char *buf, size_t cap) {
    return switchyard_json_string(v, buf, cap) >= 0 ? buf : "?";
}

int switchyard_on_event(const char *json, size_t len) {
    switchyard_json ev, name, id = {"null", 4}, data, value, item;
    char name_text[256], id_text[64];
    if (switchyard_json_parse(json, len, &ev) != 0 || !switchyard_json_get(ev, "name", &name))
        return switchyard_fail("filter: malformed event JSON");
    switchyard_json_get(ev, "id", &id);
    if (!switchyard_json_get(ev, "data", &data) || !switchyard_json_get(data, field, &value) ||
        switchyard_json_typeof(value) == SWITCHYARD_JSON_NULL) {
        switchyard_logf(SWITCHYARD_DEBUG, "filter: dropped %s %s, no data.%s",
                        text(name, name_text, sizeof name_text), text(id, id_text, sizeof id_text),
                        field);
        return 0;
    }

    switchyard_buf b;
    switchyard_buf_init(&b, out, sizeof out);
    switchyard_buf_cstr(&b, "{\"name\":");
    switchyard_buf_string(&b, emit_name, strlen(emit_name));
    switchyard_buf_cstr(&b, ",\"data\":{");
    copy_member(&b, data, field);
    char key[256];
    size_t pos = 0;
    while (switchyard_json_next(keep, &pos, NULL, &item))
        if (switchyard_json_string(item, key, sizeof key) > 0 && strcmp(key, field) != 0)
            copy_member(&b, data, key);
    switchyard_buf_cstr(&b, "\"from\":{\"name\":");
    switchyard_buf_raw(&b, name.ptr, name.len);
    switchyard_buf_cstr(&b, ",\"id\":");
    switchyard_buf_raw(&b, id.ptr, id.len);
    switchyard_buf_cstr(&b, "}}}");
    if (b.overflow) return switchyard_failf("filter: reshaped event over %zu bytes", sizeof out);

    int rc = switchyard_emit(b.ptr, b.len);
    if (rc != SWITCHYARD_EMIT_OK) return switchyard_failf("filter: emit %s refused (%d)", emit_name, rc);
    switchyard_logf(SWITCHYARD_DEBUG, "filter: %s %s -> %s", text(name, name_text, sizeof name_text),
                    text(id, id_text, sizeof id_text), emit_name);
    return 0;
}
