/* Checks of the C interface that examples/c/describe.c does not make: a panic inside the
 * library comes back as VLM_ERR_PANIC (vlm_debug_panic exists in debug builds only and is not
 * in the header), NULL arguments are reported, and a callback that returns nonzero stops the
 * generation with the text so far. Prints "ok" and exits 0 when all hold.
 *
 *   ffi_checks MODEL IMAGE
 */
#include <stdio.h>
#include <string.h>

#include "vlm.h"

int vlm_debug_panic(vlm_error **err);

#define CHECK(cond, what)                                   \
    do {                                                    \
        if (!(cond)) {                                      \
            fprintf(stderr, "check failed: %s\n", what);    \
            return 1;                                       \
        }                                                   \
    } while (0)

static int stop_after_two(const char *piece, void *user_data) {
    (void)piece;
    int *seen = user_data;
    *seen += 1;
    return *seen >= 2;
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: ffi_checks MODEL IMAGE");
    vlm_error *err = NULL;

    CHECK(vlm_debug_panic(&err) == VLM_ERR_PANIC, "panic returns VLM_ERR_PANIC");
    CHECK(vlm_error_code(err) == VLM_ERR_PANIC, "panic error code");
    CHECK(strstr(vlm_error_message(err), "panic") != NULL, "panic message");
    vlm_error_free(err);
    err = NULL;

    CHECK(vlm_engine_load(NULL, NULL, &err) == NULL, "NULL model path fails");
    CHECK(vlm_error_code(err) == VLM_ERR_INVALID_ARGUMENT, "NULL model path code");
    vlm_error_free(err);
    err = NULL;

    vlm_engine *engine = vlm_engine_load(argv[1], NULL, &err);
    CHECK(engine != NULL, "fixture model loads");
    vlm_session *session = vlm_session_new(engine);
    CHECK(vlm_ask(session, argv[2], NULL, 8, NULL, NULL, NULL, &err) == NULL, "NULL prompt fails");
    CHECK(vlm_error_code(err) == VLM_ERR_INVALID_ARGUMENT, "NULL prompt code");
    vlm_error_free(err);
    err = NULL;

    CHECK(vlm_ask(session, "no/such/image.png", "Hi", 8, NULL, NULL, NULL, &err) == NULL,
          "missing image fails");
    CHECK(vlm_error_code(err) == VLM_ERR_INPUT, "missing image code");
    CHECK(strstr(vlm_error_message(err), "no/such/image.png") != NULL, "missing image named");
    vlm_error_free(err);
    err = NULL;

    /* A cancelled flag stops before the first token; a nonzero callback after the second. */
    vlm_cancel *cancel = vlm_cancel_new();
    vlm_cancel_set(cancel);
    char *text = vlm_ask(session, argv[2], "Describe it.", 64, NULL, NULL, cancel, &err);
    CHECK(text != NULL && text[0] == '\0', "cancelled ask returns empty text");
    vlm_string_free(text);
    vlm_cancel_free(cancel);

    vlm_session_reset(session);
    int seen = 0;
    text = vlm_ask(session, argv[2], "Describe it.", 64, stop_after_two, &seen, NULL, &err);
    CHECK(text != NULL, "stopped ask returns text");
    CHECK(seen == 2, "callback stop ends generation after two pieces");
    vlm_string_free(text);

    vlm_session_free(session);
    vlm_engine_free(engine);
    printf("ok\n");
    return 0;
}
