/*
 * json: escaping record bytes into JSON strings for `ringlog consume --format json`. Keys and
 * values are arbitrary bytes, so the escape must turn any input into valid JSON: valid UTF-8
 * passes through, control characters and quotes are escaped, and a byte that is not part of a
 * valid UTF-8 sequence becomes \u00XX (read as Latin-1), so nothing is silently dropped.
 */
#include <stdio.h>

#include "client/client_internal.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one. */
static size_t utf8_seq(const uint8_t *s, size_t len)
{
    uint8_t c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static void put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, (*pos)++)
        if (*pos + 1 < outlen)
            out[*pos] = s[i];
}

size_t rlc_json_escape(const uint8_t *s, size_t len, char *out, size_t outlen)
{
    size_t pos = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(out, outlen, &pos, esc, 2);
            i++;
            continue;
        }
        if (c < 0x20 || c == 0x7F) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
                              : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (named) {
                put(out, outlen, &pos, named, 2);
            } else {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                put(out, outlen, &pos, esc, 6);
            }
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(out, outlen, &pos, esc, 6);
            i++;
            continue;
        }
        put(out, outlen, &pos, (const char *)s + i, n);
        i += n;
    }
    if (outlen)
        out[pos < outlen ? pos : outlen - 1] = 0;
    return pos;
}
