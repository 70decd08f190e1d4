/* Conformance plugin in command mode (a WASI program), for the host's test
 * suite: it does what the event's name asks (see plugins/README.md).
 * Emit: a JSON object line on stdout. Log: a plain stdout line (info).
 * Fail: message on stderr, exit 1. Config: from SWITCHYARD_CONFIG. */
#define SWITCHYARD_COMMAND
#define SWITCHYARD_IMPLEMENTATION
#include "switchyard.h"

#include <stdio.h>

static char input[1 << 20];

int main(void) {
    size_t len = fread(input, 1, sizeof input - 1, stdin), config_len;
    const char *config_text = switchyard_config(&config_len);
    switchyard_json ev, name, id = {"null", 4}, config;
    if (switchyard_json_parse(input, len, &ev) != 0 || !switchyard_json_get(ev, "name", &name)) {
        fputs("conformance command: malformed event JSON on stdin\n", stderr);
        return 1;
    }
    switchyard_json_get(ev, "id", &id);

    if (switchyard_json_string_eq(name, "conf.Emit")) {
        printf("{\"name\":\"conf.Emitted\",\"data\":{\"lang\":\"command\",\"from\":%.*s}}\n",
               (int)id.len, id.ptr);
    } else if (switchyard_json_string_eq(name, "conf.Log")) {
        puts("conformance command");
    } else if (switchyard_json_string_eq(name, "conf.Fail")) {
        fputs("conformance command failed on purpose\n", stderr);
        return 1;
    } else if (switchyard_json_string_eq(name, "conf.Config")) {
        if (switchyard_json_parse(config_text, config_len, &config) != 0) {
            fputs("conformance command: SWITCHYARD_CONFIG is not valid JSON\n", stderr);
            return 1;
        }
        fputs("{\"name\":\"conf.ConfigSeen\",\"data\":", stdout);
        for (size_t i = 0; i < config.len; i++) /* raw newlines are whitespace */
            putchar(config.ptr[i] == '\n' || config.ptr[i] == '\r' ? ' ' : config.ptr[i]);
        puts("}");
    } else if (switchyard_json_string_eq(name, "conf.Trap")) {
        __builtin_trap();
    }
    return 0;
}
