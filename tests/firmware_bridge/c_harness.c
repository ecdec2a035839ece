/* Test harness: stream stdin through hbnn_decoder_push, print one line per event.
 * R seq ts class conf_bits latency_us count [class conf_bits]...   (floats as hex bits)
 * S severity text_hex
 * E code
 * With argument "sizes", print the struct sizes instead. */
#include <stdio.h>
#include <string.h>
#include "hbnn_frames.h"

static unsigned long bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return (unsigned long)b;
}

int main(int argc, char **argv)
{
    static hbnn_decoder dec;
    hbnn_message msg;
    unsigned char chunk[4096];
    size_t n, i, k;
    if (argc > 1 && strcmp(argv[1], "sizes") == 0) {
        printf("decoder %u message %u\n", (unsigned)sizeof(hbnn_decoder), (unsigned)sizeof(hbnn_message));
        return 0;
    }
    hbnn_decoder_init(&dec);
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        for (i = 0; i < n; i++) {
            int r = hbnn_decoder_push(&dec, chunk[i], &msg);
            if (r == HBNN_RESULT) {
                const hbnn_result *res = &msg.u.result;
                printf("R %lu %llu %u %08lx %lu %u", (unsigned long)res->sequence,
                       (unsigned long long)res->timestamp_us, (unsigned)res->class_id,
                       bits(res->confidence), (unsigned long)res->latency_us, (unsigned)res->topk_count);
                for (k = 0; k < res->topk_count; k++) {
                    printf(" %u %08lx", (unsigned)res->topk[k].class_id, bits(res->topk[k].confidence));
                }
                printf("\n");
            } else if (r == HBNN_STATUS) {
                printf("S %u ", (unsigned)msg.u.status.severity);
                for (k = 0; msg.u.status.text[k] != '\0'; k++) {
                    printf("%02x", (unsigned)(unsigned char)msg.u.status.text[k]);
                }
                printf("\n");
            } else if (r < 0) {
                printf("E %d\n", r);
            }
        }
    }
    return 0;
}
