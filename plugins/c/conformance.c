/* Conformance plugin of the C header, for the host's test suite: it does
 * what the event's name asks (see plugins/README.md, "Conformance"). */
#define SWITCHYARD_IMPLEMENTATION
#include "switchyard.h"

static char out[64 * 1024];

/* Emits {"name": name, "data": data_json}. */
static int emit_with(const char *name, const char *data, size_t data_len) {
    switchyard_buf b;
    switchyard_buf_init(&b, out, sizeof out);
    switchyard_buf_cstr(&b, "{\"name\":\"");
    switchyard_buf_cstr(&b, name);
    switchyard_buf_cstr(&b, "\",\"data\":");
    switchyard_buf_raw(&b, data, data_len);
    switchyard_buf_cstr(&b, "}");
    if (b.overflow) return switchyard_fail("conformance c: event too large");
    int rc = switchyard_emit(b.ptr, b.len);
    return rc == SWITCHYARD_EMIT_OK ? 0 : switchyard_failf("conformance c: emit refused (%d)", rc);
}

int switchyard_on_event(const char *json, size_t len) {
    switchyard_json ev, name, id = {"null", 4}, config;
    if (switchyard_json_parse(json, len, &ev) != 0 || !switchyard_json_get(ev, "name", &name))
        return switchyard_fail("conformance c: malformed event JSON");
    switchyard_json_get(ev, "id", &id);

    if (switchyard_json_string_eq(name, "conf.Emit")) {
        char data[512];
        switchyard_buf b;
        switchyard_buf_init(&b, data, sizeof data);
        switchyard_buf_cstr(&b, "{\"lang\":\"c\",\"from\":");
        switchyard_buf_raw(&b, id.ptr, id.len);
        switchyard_buf_cstr(&b, "}");
        if (b.overflow) return switchyard_fail("conformance c: id too long");
        return emit_with("conf.Emitted", b.ptr, b.len);
    }
    if (switchyard_json_string_eq(name, "conf.Log")) {
        switchyard_log(SWITCHYARD_INFO, "conformance c");
        return 0;
    }
    if (switchyard_json_string_eq(name, "conf.Fail"))
        return switchyard_fail("conformance c failed on purpose");
    if (switchyard_json_string_eq(name, "conf.Config")) {
        size_t n;
        const char *text = switchyard_config(&n);
        if (switchyard_json_parse(text, n, &config) != 0)
            return switchyard_fail("conformance c: malformed config");
        return emit_with("conf.ConfigSeen", config.ptr, config.len);
    }
    if (switchyard_json_string_eq(name, "conf.Trap")) __builtin_trap();
    return 0;
}
