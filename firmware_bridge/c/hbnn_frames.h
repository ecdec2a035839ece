/*
 * hbnn_frames.h - header-only decoder for the hadanets-edge framed protocol.
 *
 * Wire format (docs/PROTOCOL.md):  COBS( ver | type | payload | crc16le ) 0x00
 * CRC-16/CCITT-FALSE over ver, type and payload; fixed little-endian payloads.
 *
 * For bare MCUs: C99, no malloc, no stdio, no floating-point arithmetic (floats
 * are only copied), about 70 bytes of decoder state plus a 64-byte scratch
 * buffer on the stack while a frame is checked. Feed received bytes one at a
 * time (from a UART ISR ring buffer, for example):
 *
 *     static hbnn_decoder dec;            // hbnn_decoder_init(&dec) once
 *     hbnn_message msg;
 *     int r = hbnn_decoder_push(&dec, byte, &msg);
 *     if (r == HBNN_RESULT) use(msg.u.result.class_id, msg.u.result.confidence);
 *     else if (r < 0) count_error(r);     // a bad frame; already resynchronized
 *
 * The Python decoder (firmware_bridge/frames.py) runs the same checks in the
 * same order and returns the same codes; the tests compare the two.
 */
#ifndef HBNN_FRAMES_H
#define HBNN_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HBNN_PROTOCOL_VERSION 1u
#define HBNN_TYPE_RESULT 0x01u
#define HBNN_TYPE_STATUS 0x02u
#define HBNN_TOPK_MAX 4
#define HBNN_STATUS_TEXT_MAX 50
#define HBNN_RESULT_PAYLOAD_LEN 47u
#define HBNN_STATUS_PAYLOAD_LEN 51u
/* Longest COBS-encoded frame without its delimiter. */
#define HBNN_MAX_ENCODED_LEN 64u

/* Return values: > 0 a message, 0 nothing yet, < 0 a rejected frame. */
enum {
    HBNN_NONE = 0,
    HBNN_RESULT = 1,
    HBNN_STATUS = 2,
    HBNN_ERR_COBS = -1,     /* malformed COBS block */
    HBNN_ERR_SHORT = -2,    /* fewer than 4 decoded bytes */
    HBNN_ERR_CRC = -3,      /* CRC mismatch */
    HBNN_ERR_VERSION = -4,  /* unknown protocol version */
    HBNN_ERR_TYPE = -5,     /* unknown message type */
    HBNN_ERR_LENGTH = -6,   /* payload length does not match the type */
    HBNN_ERR_FIELD = -7,    /* topk_count > 4, severity > 7, or a NaN/inf confidence */
    HBNN_ERR_OVERFLOW = -8  /* more than HBNN_MAX_ENCODED_LEN bytes between delimiters */
};

typedef struct {
    uint16_t class_id;
    float confidence;
} hbnn_topk_entry;

typedef struct {
    uint32_t sequence;
    uint64_t timestamp_us;
    uint16_t class_id;
    float confidence;
    uint32_t latency_us;
    uint8_t topk_count;                  /* valid entries in topk, 0..4 */
    hbnn_topk_entry topk[HBNN_TOPK_MAX];
} hbnn_result;

typedef struct {
    uint8_t severity;                    /* MAV_SEVERITY numbering, 0..7 */
    char text[HBNN_STATUS_TEXT_MAX + 1]; /* UTF-8, always NUL-terminated */
} hbnn_status;

typedef struct {
    uint8_t type;                        /* HBNN_TYPE_RESULT or HBNN_TYPE_STATUS */
    union {
        hbnn_result result;
        hbnn_status status;
    } u;
} hbnn_message;

typedef struct {
    uint8_t buf[HBNN_MAX_ENCODED_LEN];
    uint8_t len;
    uint8_t overflow;
} hbnn_decoder;

static inline void hbnn_decoder_init(hbnn_decoder *d)
{
    d->len = 0;
    d->overflow = 0;
}

/* Bitwise on purpose: no 512-byte table in flash; frames are ~55 bytes. */
static inline uint16_t hbnn_crc16_ccitt_false(const uint8_t *data, size_t len)
{
    uint32_t crc = 0xFFFFu; /* 32-bit to keep -Wconversion quiet; masked below */
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc ^= (uint32_t)data[i] << 8;
        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? ((crc << 1) ^ 0x1021u) : (crc << 1);
        }
        crc &= 0xFFFFu;
    }
    return (uint16_t)crc;
}

/* Decode COBS; return the decoded length, or HBNN_ERR_COBS / HBNN_ERR_OVERFLOW. */
static inline int hbnn_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0, k;
    while (i < len) {
        size_t code = in[i];
        if (code == 0 || code > len - i) {
            return HBNN_ERR_COBS;
        }
        for (k = 1; k < code; k++) {
            if (in[i + k] == 0) {
                return HBNN_ERR_COBS;
            }
            if (o >= cap) {
                return HBNN_ERR_OVERFLOW;
            }
            out[o++] = in[i + k];
        }
        i += code;
        if (code < 0xFFu && i < len) {
            if (o >= cap) {
                return HBNN_ERR_OVERFLOW;
            }
            out[o++] = 0;
        }
    }
    return (int)o;
}

static inline uint16_t hbnn_rd_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)(p[1] << 8));
}

static inline uint32_t hbnn_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t hbnn_rd_u64(const uint8_t *p)
{
    return (uint64_t)hbnn_rd_u32(p) | ((uint64_t)hbnn_rd_u32(p + 4) << 32);
}

/* Read an IEEE-754 float32; return 0 if it is NaN or infinite. */
static inline int hbnn_rd_f32(const uint8_t *p, float *out)
{
    uint32_t bits = hbnn_rd_u32(p);
    memcpy(out, &bits, sizeof *out);
    return (bits & 0x7F800000u) != 0x7F800000u;
}

/* Check and unpack a COBS-decoded frame (version .. crc). */
static inline int hbnn_parse_raw(const uint8_t *raw, size_t len, hbnn_message *msg)
{
    const uint8_t *p;
    size_t body, i;
    int finite;
    if (len < 4) {
        return HBNN_ERR_SHORT;
    }
    body = len - 2;
    if (hbnn_crc16_ccitt_false(raw, body) != hbnn_rd_u16(raw + body)) {
        return HBNN_ERR_CRC;
    }
    if (raw[0] != HBNN_PROTOCOL_VERSION) {
        return HBNN_ERR_VERSION;
    }
    if (raw[1] != HBNN_TYPE_RESULT && raw[1] != HBNN_TYPE_STATUS) {
        return HBNN_ERR_TYPE;
    }
    p = raw + 2;
    if (raw[1] == HBNN_TYPE_STATUS) {
        if (body - 2 != HBNN_STATUS_PAYLOAD_LEN) {
            return HBNN_ERR_LENGTH;
        }
        if (p[0] > 7u) {
            return HBNN_ERR_FIELD;
        }
        msg->type = HBNN_TYPE_STATUS;
        msg->u.status.severity = p[0];
        memcpy(msg->u.status.text, p + 1, HBNN_STATUS_TEXT_MAX);
        msg->u.status.text[HBNN_STATUS_TEXT_MAX] = '\0';
        return HBNN_STATUS;
    }
    if (body - 2 != HBNN_RESULT_PAYLOAD_LEN) {
        return HBNN_ERR_LENGTH;
    }
    if (p[22] > HBNN_TOPK_MAX) {
        return HBNN_ERR_FIELD;
    }
    msg->type = HBNN_TYPE_RESULT;
    msg->u.result.sequence = hbnn_rd_u32(p);
    msg->u.result.timestamp_us = hbnn_rd_u64(p + 4);
    msg->u.result.class_id = hbnn_rd_u16(p + 12);
    finite = hbnn_rd_f32(p + 14, &msg->u.result.confidence);
    msg->u.result.latency_us = hbnn_rd_u32(p + 18);
    msg->u.result.topk_count = p[22];
    for (i = 0; i < HBNN_TOPK_MAX; i++) {
        const uint8_t *e = p + 23 + 6 * i;
        msg->u.result.topk[i].class_id = hbnn_rd_u16(e);
        if (!hbnn_rd_f32(e + 2, &msg->u.result.topk[i].confidence) && i < p[22]) {
            finite = 0;
        }
    }
    return finite ? HBNN_RESULT : HBNN_ERR_FIELD;
}

/* Decode one frame given without its 0x00 delimiter. */
static inline int hbnn_decode_frame(const uint8_t *encoded, size_t len, hbnn_message *msg)
{
    uint8_t raw[HBNN_MAX_ENCODED_LEN];
    int n;
    if (len > HBNN_MAX_ENCODED_LEN) {
        return HBNN_ERR_OVERFLOW;
    }
    n = hbnn_cobs_decode(encoded, len, raw, sizeof raw);
    if (n < 0) {
        return n;
    }
    return hbnn_parse_raw(raw, (size_t)n, msg);
}

/* Push one received byte. Returns HBNN_NONE until a delimiter completes a frame. */
static inline int hbnn_decoder_push(hbnn_decoder *d, uint8_t byte, hbnn_message *msg)
{
    int r;
    if (byte != 0) {
        if (d->overflow) {
            return HBNN_NONE;
        }
        if (d->len >= HBNN_MAX_ENCODED_LEN) {
            d->overflow = 1; /* drop until the next delimiter, then report once */
            d->len = 0;
            return HBNN_NONE;
        }
        d->buf[d->len++] = byte;
        return HBNN_NONE;
    }
    if (d->overflow) {
        hbnn_decoder_init(d);
        return HBNN_ERR_OVERFLOW;
    }
    if (d->len == 0) {
        return HBNN_NONE; /* empty frame: a resync delimiter */
    }
    r = hbnn_decode_frame(d->buf, d->len, msg);
    d->len = 0;
    return r;
}

#endif /* HBNN_FRAMES_H */
