/* Describe an image through the C interface of vlm, streaming the answer to stdout.
 *
 *   cargo rustc --release --lib --features ffi --crate-type staticlib
 *   cc examples/c/describe.c -Iinclude target/release/libvlm.a -lstdc++ -lpthread -ldl -lm -o describe
 *   ./describe tests/fixtures/models/tiny-smolvlm tests/fixtures/images/landscape.png
 *
 * MODEL is a checkpoint directory or a text-model GGUF (then MMPROJ is its vision projector).
 * Exit status: 0 on success, 1 when the model cannot be loaded or run, 2 for bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vlm.h"

/* Prints each piece as it arrives and counts them; returns 0 to keep generating. */
static int on_token(const char *piece, void *user_data) {
    size_t *pieces = user_data;
    *pieces += 1;
    fputs(piece, stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL IMAGE [MMPROJ]\n", argv[0]);
        return 2;
    }
    vlm_error *err = NULL;
    vlm_engine *engine = vlm_engine_load(argv[1], argc == 4 ? argv[3] : NULL, &err);
    if (engine == NULL) {
        fprintf(stderr, "error (%d): %s\n", vlm_error_code(err), vlm_error_message(err));
        vlm_error_free(err);
        return 1;
    }
    vlm_session *session = vlm_session_new(engine);
    size_t pieces = 0;
    char *answer = vlm_ask(session, argv[2], "Can you describe this image?", 32, on_token,
                           &pieces, NULL, &err);
    int status = 0;
    if (answer == NULL) {
        fprintf(stderr, "error (%d): %s\n", vlm_error_code(err), vlm_error_message(err));
        vlm_error_free(err);
        status = 1;
    } else {
        printf("\n");
        fprintf(stderr, "[%zu pieces streamed, %zu bytes of text]\n", pieces, strlen(answer));
        vlm_string_free(answer);
    }
    vlm_session_free(session);
    vlm_engine_free(engine);
    return status;
}
