/* A Cortex-M translation unit: a UART receive hook using the decoder (size test). */
#include "hbnn_frames.h"
static hbnn_decoder dec;
volatile uint16_t last_class;
volatile int errors;
void uart_rx(uint8_t byte);
void uart_rx(uint8_t byte)
{
    hbnn_message msg;
    int r = hbnn_decoder_push(&dec, byte, &msg);
    if (r == HBNN_RESULT) {
        last_class = msg.u.result.class_id;
    } else if (r < 0) {
        errors++;
    }
}
void init(void);
void init(void) { hbnn_decoder_init(&dec); }
