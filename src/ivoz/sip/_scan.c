/*
 * ivoz.sip._scan: the hot path of `ivoz.sip` in C, for the common shape of a message.
 *
 * Four functions, each the C twin of a piece of Python in ivoz.sip:
 *
 *   scan(data, known, key)  parse_message's cut of the header block (message.py)
 *   via(text)               Via.parse's one-regex fast path (values.py, _FAST_VIA_RE)
 *   address(text)           NameAddr.parse's "<sip:...>;params" fast path (_FAST_ADDR_RE)
 *   tag(text, slow)         message._fast_tag, the From/To tag without a full parse
 *
 * Each accepts only the clean, common shape and answers None (`tag`: `slow`) for
 * anything else, so that the Python code stays the one reference for unusual input and
 * for every error: C never decides a 400. Where C answers, its answer equals the Python
 * path's; tests/unit/sip/test_sip_scan.py checks that on generated input, and the
 * conformance and unit suites run with and without this module.
 *
 * Memory safety: every read is bounded by the length of the bytes or str object; str
 * arguments are read only when they are compact ASCII (one byte per character).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Character classes of RFC 3261 25.1, as the Python fast paths' regular expressions
 * spell them (grammar.py, uri.py, values.py). */
enum {
    TOKEN = 1,    /* token: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" */
    HOST0 = 2,    /* first character of a hostname: [A-Za-z0-9_] */
    HOST = 4,     /* hostname: [A-Za-z0-9-_.] */
    USER = 8,     /* user: [A-Za-z0-9-_.!~*'()&=+$,;?/] (no escapes on the fast path) */
    PCHAR = 16,   /* URI parameter: [A-Za-z0-9-_.!~*'()&+$[]/:] (no escapes) */
    DIGIT = 32,
};

static unsigned char cls[256];

static void set_class(const char *chars, unsigned char flag)
{
    for (; *chars; chars++)
        cls[(unsigned char)*chars] |= flag;
}

static void init_classes(void)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    set_class(alnum, TOKEN | HOST0 | HOST | USER | PCHAR);
    set_class("-.!%*_+`'~", TOKEN);
    set_class("_", HOST0);
    set_class("-_.", HOST);
    set_class("-_.!~*'()&=+$,;?/", USER);
    set_class("-_.!~*'()&+$[]/:", PCHAR);
    set_class("0123456789", DIGIT);
}

static PyObject *colon;     /* ":" shared by every line tuple, as str.partition gives it */
static PyObject *sip_str;   /* "sip" */
static PyObject *sips_str;  /* "sips" */
static PyObject *transports[6];
static const char *const transport_names[6] = {"UDP", "TCP", "TLS", "SCTP", "WS", "WSS"};

/* -- helpers ----------------------------------------------------------------------- */

/* An ASCII str from s[0:n] (the caller checked the octets are ASCII). */
static PyObject *ascii(const char *s, Py_ssize_t n)
{
    PyObject *out = PyUnicode_New(n, 127);
    if (out != NULL)
        memcpy(PyUnicode_1BYTE_DATA(out), s, (size_t)n);
    return out;
}

static PyObject *ascii_lower(const char *s, Py_ssize_t n)
{
    PyObject *out = PyUnicode_New(n, 127);
    Py_ssize_t i;
    if (out != NULL) {
        Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            d[i] = (Py_UCS1)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
    }
    return out;
}

/* The text of a compact ASCII str, or NULL (not an error) for any other str. */
static const char *ascii_text(PyObject *text, Py_ssize_t *n)
{
    /* PyUnicode_READY: a str made by the old wchar_t API has no compact form yet (3.11) */
    if (!PyUnicode_CheckExact(text) || PyUnicode_READY(text) < 0 || !PyUnicode_IS_ASCII(text)) {
        PyErr_Clear();
        return NULL;
    }
    *n = PyUnicode_GET_LENGTH(text);
    return (const char *)PyUnicode_1BYTE_DATA(text);
}

static Py_ssize_t run(const char *s, Py_ssize_t i, Py_ssize_t n, unsigned char flag)
{
    while (i < n && (cls[(unsigned char)s[i]] & flag))
        i++;
    return i;
}

/*
 * ";name[=value]" parameters from s[*pos] on, names and values in class `flag`, as the
 * regex (?:;X++(?:=X++)?)*+ reads them. Stops at the first character that cannot start
 * or continue a parameter. Names are lower-cased into `params` (a later one replaces an
 * earlier one, as the Python loops do). 1 done, 0 malformed, -1 error.
 */
static int params(const char *s, Py_ssize_t *pos, Py_ssize_t n, unsigned char flag,
                  PyObject *params)
{
    Py_ssize_t i = *pos;
    while (i < n && s[i] == ';') {
        Py_ssize_t name = i + 1, name_end = run(s, name, n, flag), value, value_end;
        PyObject *k, *v;
        int status;
        if (name_end == name)
            return 0;
        i = name_end;
        if (i < n && s[i] == '=') {
            value = i + 1;
            value_end = run(s, value, n, flag);
            if (value_end == value)
                return 0;
            i = value_end;
            v = ascii(s + value, value_end - value);
            if (v == NULL)
                return -1;
        } else {
            v = Py_NewRef(Py_None);
        }
        k = ascii_lower(s + name, name_end - name);
        if (k == NULL) {
            Py_DECREF(v);
            return -1;
        }
        status = PyDict_SetItem(params, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (status < 0)
            return -1;
    }
    *pos = i;
    return 1;
}

/* A port of 1 to 5 digits at s[*pos] (after ":"): the value, -2 when absent or
 * malformed. Values above 65535 are malformed here (Python answers 400 for them). */
static long port(const char *s, Py_ssize_t *pos, Py_ssize_t n)
{
    Py_ssize_t i = *pos, end = run(s, i, n, DIGIT);
    long value = 0;
    if (end == i || end - i > 5)
        return -2;
    for (; i < end; i++)
        value = value * 10 + (s[i] - '0');
    if (value > 65535)
        return -2;
    *pos = end;
    return value;
}

/* A hostname or IPv4 address at s[*pos]: [A-Za-z0-9_][A-Za-z0-9-_.]*, not ending in "-". */
static Py_ssize_t host(const char *s, Py_ssize_t pos, Py_ssize_t n)
{
    Py_ssize_t end;
    if (pos >= n || !(cls[(unsigned char)s[pos]] & HOST0))
        return -1;
    end = run(s, pos + 1, n, HOST);
    if (s[end - 1] == '-')
        return -1; /* RFC 3261 25.1: a label does not end with "-" */
    return end;
}

/* host [":" port] at s[*pos]: 1 with *pos past it, *host_end and *port_value (-1 when
 * absent) set; 0 when malformed. */
static int hostport(const char *s, Py_ssize_t *pos, Py_ssize_t n, Py_ssize_t *host_end,
                    long *port_value)
{
    Py_ssize_t i = host(s, *pos, n);
    if (i < 0)
        return 0;
    *host_end = i;
    *port_value = -1;
    if (i < n && s[i] == ':') {
        i++;
        *port_value = port(s, &i, n);
        if (*port_value < 0)
            return 0;
    }
    *pos = i;
    return 1;
}

/* -- scan -------------------------------------------------------------------------- */

/* Known spellings of header names (ivoz.sip.headers._KNOWN), looked up by their octets
 * so that a known name costs no allocation: an open-addressing table built once per
 * `known` dict. */
#define TABLE_SIZE 1024
typedef struct {
    PyObject *name; /* the dict's key: the spelling as a str (a strong reference) */
    PyObject *key;  /* its canonical key */
    Py_ssize_t len;
    const char *text;
    int is_length; /* the key is "content-length" */
} Spelling;

static Spelling table[TABLE_SIZE];
static PyObject *table_for; /* the dict the table was built from (a strong reference) */
static PyObject *content_length; /* "content-length" */

static size_t hash_octets(const char *s, Py_ssize_t n)
{
    size_t h = 2166136261u;
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void clear_table(void)
{
    size_t i;
    for (i = 0; i < TABLE_SIZE; i++) {
        Py_CLEAR(table[i].name);
        Py_CLEAR(table[i].key);
    }
    Py_CLEAR(table_for);
}

static int build_table(PyObject *known)
{
    Py_ssize_t pos = 0, n, used = 0;
    PyObject *name, *key;
    clear_table();
    while (PyDict_Next(known, &pos, &name, &key)) {
        const char *text = ascii_text(name, &n);
        size_t slot;
        if (text == NULL || !PyUnicode_CheckExact(key))
            continue; /* not representable here: looked up through the dict */
        if (++used > TABLE_SIZE / 2)
            break; /* the rest go through the dict */
        slot = hash_octets(text, n) & (TABLE_SIZE - 1);
        while (table[slot].name != NULL)
            slot = (slot + 1) & (TABLE_SIZE - 1);
        table[slot].name = Py_NewRef(name);
        table[slot].key = Py_NewRef(key);
        table[slot].len = n;
        table[slot].text = text;
        table[slot].is_length = PyUnicode_Compare(key, content_length) == 0;
    }
    table_for = Py_NewRef(known);
    return 0;
}

static Spelling *lookup(const char *s, Py_ssize_t n)
{
    size_t slot = hash_octets(s, n) & (TABLE_SIZE - 1);
    while (table[slot].name != NULL) {
        if (table[slot].len == n && memcmp(table[slot].text, s, (size_t)n) == 0)
            return &table[slot];
        slot = (slot + 1) & (TABLE_SIZE - 1);
    }
    return NULL;
}

/* True when s[0:n] holds an octet above 0x7f (eight at a time). */
static int any_high(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    uint64_t word, high = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, s + i, 8);
        high |= word;
    }
    for (; i < n; i++)
        high |= (unsigned char)s[i];
    return (high & UINT64_C(0x8080808080808080)) != 0;
}

/* s[0:n] decoded as Python decodes the block: UTF-8 with surrogateescape. */
static PyObject *decode(const char *s, Py_ssize_t n, int high)
{
    if (high)
        return PyUnicode_DecodeUTF8(s, n, "surrogateescape");
    return ascii(s, n);
}

/* Content-Length as the scan saw it: how many lines, and the first one's value
 * (-1 unless it is 1 to 10 digits between optional SP/HTAB, RFC 3261 20.14). */
typedef struct {
    int count;
    long long value;
} Length;

static long long digits_value(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0, j = n, k;
    long long value = 0;
    while (i < j && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (j > i && (s[j - 1] == ' ' || s[j - 1] == '\t'))
        j--;
    if (j == i || j - i > 10)
        return -1;
    for (k = i; k < j; k++) {
        if (!(cls[(unsigned char)s[k]] & DIGIT))
            return -1;
        value = value * 10 + (s[k] - '0');
    }
    return value;
}

/* One header line s[0:n] stored at `index` of keys and lines: 1 done, 0 not clean,
 * -1 error. `high`: the block holds octets above 0x7f. */
static int add_line(const char *s, Py_ssize_t n, PyObject *known, PyObject *keyfunc,
                    PyObject *keys, PyObject *lines, Py_ssize_t index, int high,
                    Length *length)
{
    const char *sep;
    Py_ssize_t name_len, i;
    PyObject *name, *key, *value, *line;
    Spelling *spelling;
    int is_length;

    if (n == 0 || s[0] == ' ' || s[0] == '\t')
        return 0; /* folded (RFC 3261 7.3.1) or empty: the Python path decides */
    sep = memchr(s, ':', (size_t)n);
    if (sep == NULL)
        return 0;
    name_len = sep - s;
    if (name_len == 0)
        return 0;
    for (i = 0; i < name_len; i++) {
        if (!(cls[(unsigned char)s[i]] & TOKEN))
            return 0;
    }
    spelling = lookup(s, name_len);
    if (spelling != NULL) {
        name = Py_NewRef(spelling->name);
        key = Py_NewRef(spelling->key);
        is_length = spelling->is_length;
    } else {
        name = ascii(s, name_len);
        if (name == NULL)
            return -1;
        key = PyDict_GetItemWithError(known, name); /* borrowed */
        if (key != NULL) {
            Py_INCREF(key);
        } else if (PyErr_Occurred()) {
            Py_DECREF(name);
            return -1;
        } else {
            key = PyObject_CallOneArg(keyfunc, name);
            if (key == NULL) {
                Py_DECREF(name);
                return -1;
            }
        }
        is_length = PyUnicode_Check(key) && PyUnicode_Compare(key, content_length) == 0;
        if (PyErr_Occurred()) {
            Py_DECREF(name);
            Py_DECREF(key);
            return -1;
        }
    }
    if (is_length && length->count++ == 0)
        length->value = digits_value(sep + 1, n - name_len - 1);
    value = decode(sep + 1, n - name_len - 1, high);
    if (value == NULL) {
        Py_DECREF(name);
        Py_DECREF(key);
        return -1;
    }
    line = PyTuple_New(3);
    if (line == NULL) {
        Py_DECREF(name);
        Py_DECREF(key);
        Py_DECREF(value);
        return -1;
    }
    PyTuple_SET_ITEM(line, 0, name);
    PyTuple_SET_ITEM(line, 1, Py_NewRef(colon));
    PyTuple_SET_ITEM(line, 2, value);
    PyList_SET_ITEM(keys, index, key);
    PyList_SET_ITEM(lines, index, line);
    return 1;
}

/* Index of the first CRLFCRLF, or -1. */
static Py_ssize_t find_end(const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i + 3 < n) {
        const char *cr = memchr(s + i, '\r', (size_t)(n - 3 - i));
        if (cr == NULL)
            return -1;
        i = cr - s;
        if (s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n')
            return i;
        i++;
    }
    return -1;
}

/* The number of CRLFs in s[0:end], or -1 when a CR or LF stands alone. */
static Py_ssize_t count_crlf(const char *s, Py_ssize_t end)
{
    Py_ssize_t pos = 0, count = 0;
    const char *found;
    while (pos < end && (found = memchr(s + pos, '\r', (size_t)(end - pos))) != NULL) {
        pos = found - s;
        if (pos + 1 >= end || s[pos + 1] != '\n')
            return -1;
        pos += 2;
        count++;
    }
    pos = 0;
    while (pos < end && (found = memchr(s + pos, '\n', (size_t)(end - pos))) != NULL) {
        pos = found - s;
        if (pos == 0 || s[pos - 1] != '\r')
            return -1;
        pos += 1;
    }
    return count;
}

/*
 * scan(data: bytes, known: dict[str, str], key: Callable[[str], str])
 *     -> tuple[str, list[str], list[tuple[str, str, str]], int, int] | None
 * (start line, canonical keys, (name, ":", raw value) lines, offset of the body,
 * Content-Length), the last -1 unless there is exactly one Content-Length line and its
 * value is 1 to 10 digits (between optional SP/HTAB).
 * None unless: no CR/LF before the start line (RFC 3261 7.5), CRLF line ends only, no
 * folded line (7.3.1), and every header line "token:value" (25.1).
 */
static PyObject *scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const char *s, *cr;
    Py_ssize_t n, end, pos, eol, count, index = 0;
    PyObject *known, *keyfunc, *first = NULL, *keys = NULL, *lines = NULL;
    int status, high;
    Length length = {0, -1};

    (void)module;
    if (nargs != 3 || !PyBytes_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "scan(data: bytes, known: dict, key)");
        return NULL;
    }
    s = PyBytes_AS_STRING(args[0]);
    n = PyBytes_GET_SIZE(args[0]);
    known = args[1];
    keyfunc = args[2];
    if (known != table_for && build_table(known) < 0)
        return NULL;

    if (n == 0 || s[0] == '\r' || s[0] == '\n')
        Py_RETURN_NONE;
    end = find_end(s, n);
    if (end < 0)
        Py_RETURN_NONE;
    count = count_crlf(s, end); /* one per header line */
    if (count < 0)
        Py_RETURN_NONE;
    high = any_high(s, end);

    cr = memchr(s, '\r', (size_t)end);
    eol = cr == NULL ? end : cr - s;
    first = decode(s, eol, high);
    keys = PyList_New(count);
    lines = PyList_New(count);
    if (first == NULL || keys == NULL || lines == NULL)
        goto error;
    /* Every CR of the block starts a CRLF (crlf_only), so a line ends 2 octets before
     * the next one starts, and the last one ends at `end`. */
    while (eol < end) {
        pos = eol + 2;
        cr = memchr(s + pos, '\r', (size_t)(end - pos));
        eol = cr == NULL ? end : cr - s;
        status = add_line(s + pos, eol - pos, known, keyfunc, keys, lines, index++, high,
                          &length);
        if (status < 0)
            goto error;
        if (status == 0) {
            Py_DECREF(first);
            Py_DECREF(keys);
            Py_DECREF(lines);
            Py_RETURN_NONE;
        }
    }
    return Py_BuildValue("(NNNnL)", first, keys, lines, end + 4,
                         length.count == 1 ? length.value : -1LL);

error:
    Py_XDECREF(first);
    Py_XDECREF(keys);
    Py_XDECREF(lines);
    return NULL;
}

/* -- via --------------------------------------------------------------------------- */

/*
 * via(text: str) -> tuple[str, str, int | None, dict[str, str | None]] | None
 * (transport, host, port, parameters) when `text` matches values._FAST_VIA_RE:
 * "SIP/2.0/" UDP|TCP|TLS|SCTP|WS|WSS SP host [":" port] *(";" token ["=" token]),
 * with a port up to 65535 and a host not ending in "-".
 */
static PyObject *via(PyObject *module, PyObject *text)
{
    Py_ssize_t n, i, t, host_start, host_end;
    const char *s = ascii_text(text, &n);
    PyObject *transport = NULL, *params_dict, *host_str, *port_obj;
    long port_value = -1;
    int status;

    (void)module;
    if (s == NULL || n < 10 || memcmp(s, "SIP/2.0/", 8) != 0)
        Py_RETURN_NONE;
    for (i = 8; i < n && s[i] != ' '; i++)
        ;
    if (i >= n)
        Py_RETURN_NONE;
    for (t = 0; t < 6; t++) {
        size_t len = strlen(transport_names[t]);
        if ((size_t)(i - 8) == len && memcmp(s + 8, transport_names[t], len) == 0) {
            transport = transports[t];
            break;
        }
    }
    if (transport == NULL)
        Py_RETURN_NONE;
    host_start = i = i + 1;
    if (!hostport(s, &i, n, &host_end, &port_value))
        Py_RETURN_NONE;
    params_dict = PyDict_New();
    if (params_dict == NULL)
        return NULL;
    status = params(s, &i, n, TOKEN, params_dict);
    if (status <= 0 || i != n) {
        Py_DECREF(params_dict);
        if (status < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    host_str = ascii(s + host_start, host_end - host_start);
    if (host_str == NULL) {
        Py_DECREF(params_dict);
        return NULL;
    }
    port_obj = port_value < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(port_value);
    if (port_obj == NULL) {
        Py_DECREF(params_dict);
        Py_DECREF(host_str);
        return NULL;
    }
    return Py_BuildValue("(ONNN)", transport, host_str, port_obj, params_dict);
}

/* -- address ----------------------------------------------------------------------- */

/*
 * address(text: str)
 *     -> tuple[str, str | None, str, int | None, dict, dict] | None
 * (scheme, user, host, port, URI parameters, header parameters) when `text` matches
 * values._FAST_ADDR_RE: "<" sip|sips ":" [user "@"] host [":" port] *(";" pchar-param)
 * ">" *(";" token-param), with a port up to 65535 and a host not ending in "-".
 */
static PyObject *address(PyObject *module, PyObject *text)
{
    Py_ssize_t n, i, user_start = -1, user_end = -1, host_start, host_end;
    const char *s = ascii_text(text, &n);
    PyObject *scheme, *user = NULL, *host_str = NULL, *port_obj = NULL;
    PyObject *uri_params = NULL, *header_params = NULL;
    long port_value = -1;
    int status;

    (void)module;
    if (s == NULL || n < 7 || s[0] != '<' || memcmp(s + 1, "sip", 3) != 0)
        Py_RETURN_NONE;
    i = 4;
    if (s[i] == 's') {
        scheme = sips_str;
        i++;
    } else {
        scheme = sip_str;
    }
    if (s[i] != ':')
        Py_RETURN_NONE;
    i++;
    /* (?:(user++)@)? : the longest run of user characters, kept only when "@" follows */
    {
        Py_ssize_t end = run(s, i, n, USER);
        if (end > i && end < n && s[end] == '@') {
            user_start = i;
            user_end = end;
            i = end + 1;
        }
    }
    host_start = i;
    if (!hostport(s, &i, n, &host_end, &port_value))
        Py_RETURN_NONE;
    uri_params = PyDict_New();
    header_params = PyDict_New();
    if (uri_params == NULL || header_params == NULL)
        goto error;
    status = params(s, &i, n, PCHAR, uri_params);
    if (status < 0)
        goto error;
    if (status == 0 || i >= n || s[i] != '>')
        goto none;
    i++;
    status = params(s, &i, n, TOKEN, header_params);
    if (status < 0)
        goto error;
    if (status == 0 || i != n)
        goto none;
    if (user_start >= 0) {
        user = ascii(s + user_start, user_end - user_start);
        if (user == NULL)
            goto error;
    } else {
        user = Py_NewRef(Py_None);
    }
    host_str = ascii(s + host_start, host_end - host_start);
    if (host_str == NULL)
        goto error;
    port_obj = port_value < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(port_value);
    if (port_obj == NULL)
        goto error;
    return Py_BuildValue("(ONNNNN)", scheme, user, host_str, port_obj, uri_params,
                         header_params);

none:
    Py_DECREF(uri_params);
    Py_DECREF(header_params);
    Py_RETURN_NONE;
error:
    Py_XDECREF(user);
    Py_XDECREF(host_str);
    Py_XDECREF(port_obj);
    Py_XDECREF(uri_params);
    Py_XDECREF(header_params);
    return NULL;
}

/* -- tag --------------------------------------------------------------------------- */

static int contains_tag(const char *s, Py_ssize_t n)
{
    Py_ssize_t i;
    for (i = 0; i + 2 < n; i++) {
        if ((s[i] | 32) == 't' && (s[i + 1] | 32) == 'a' && (s[i + 2] | 32) == 'g')
            return 1;
    }
    return 0;
}

/*
 * tag(text: str, slow: object) -> str | None | slow
 * The "tag" header parameter of a From/To value, as message._fast_tag finds it, when the
 * parameters (after the last ">", or an addr-spec's first ";") are plain
 * *(";" token ["=" token]) with at most one "tag": its value, or None when no parameter
 * and no other text spells "tag". `slow` for anything else (the Python code decides).
 */
static PyObject *tag(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n, i, start = -1, found = -1, found_end = -1;
    const char *s;
    PyObject *slow;

    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "tag(text, slow)");
        return NULL;
    }
    slow = args[1];
    s = ascii_text(args[0], &n);
    if (s == NULL)
        return Py_NewRef(slow);
    for (i = n - 1; i >= 0; i--) {
        if (s[i] == '>') {
            start = i + 1;
            break;
        }
    }
    if (start < 0) {
        if (memchr(s, '<', (size_t)n) != NULL)
            return Py_NewRef(slow);
        for (i = 0; i < n && s[i] != ';'; i++)
            ;
        if (i == n)
            Py_RETURN_NONE;
        start = i;
    }
    i = start;
    while (i < n && s[i] == ';') {
        Py_ssize_t name = i + 1, name_end = run(s, name, n, TOKEN), value = -1, value_end = -1;
        if (name_end == name)
            return Py_NewRef(slow);
        i = name_end;
        if (i < n && s[i] == '=') {
            value = i + 1;
            value_end = run(s, value, n, TOKEN);
            if (value_end == value)
                return Py_NewRef(slow);
            i = value_end;
        }
        if (name_end - name == 3 && (s[name] | 32) == 't' && (s[name + 1] | 32) == 'a' &&
            (s[name + 2] | 32) == 'g') {
            if (value < 0 || found >= 0)
                return Py_NewRef(slow); /* a bare or repeated tag */
            found = value;
            found_end = value_end;
        }
    }
    if (i != n)
        return Py_NewRef(slow);
    if (found >= 0)
        return ascii(s + found, found_end - found);
    if (contains_tag(s + start, n - start))
        return Py_NewRef(slow);
    Py_RETURN_NONE;
}

/* -- single ---------------------------------------------------------------------- */

static int is_ws(Py_UCS4 c)
{
    return c == ' ' || c == '\t';
}

/*
 * single(keys: list[str], lines: list[tuple[str, str, str]], key: str) -> str | None
 * The value of the one header line whose key is `key`, without surrounding SP/HTAB
 * (RFC 3261 7.3.1), as ``lines[keys.index(key)][2].strip(" \t")``; None when there is no
 * such line or more than one (the Python code then answers the 400).
 */
static PyObject *single(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *keys, *lines, *key, *line, *value;
    Py_ssize_t i, n, found = -1, start, end;
    int kind;
    const void *data;

    (void)module;
    if (nargs != 3 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1]) ||
        !PyUnicode_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "single(keys: list, lines: list, key: str)");
        return NULL;
    }
    keys = args[0];
    lines = args[1];
    key = args[2];
    if (PyUnicode_READY(key) < 0)
        return NULL;
    n = PyList_GET_SIZE(keys);
    for (i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(keys, i);
        int same = item == key;
        if (!same && PyUnicode_CheckExact(item) && PyUnicode_READY(item) == 0 &&
            PyUnicode_GET_LENGTH(item) == PyUnicode_GET_LENGTH(key)) {
            same = PyUnicode_Compare(item, key) == 0;
        }
        if (PyErr_Occurred())
            return NULL;
        if (same) {
            if (found >= 0)
                Py_RETURN_NONE;
            found = i;
        }
    }
    if (found < 0 || found >= PyList_GET_SIZE(lines))
        Py_RETURN_NONE;
    line = PyList_GET_ITEM(lines, found);
    if (!PyTuple_CheckExact(line) || PyTuple_GET_SIZE(line) != 3)
        Py_RETURN_NONE;
    value = PyTuple_GET_ITEM(line, 2);
    if (!PyUnicode_CheckExact(value) || PyUnicode_READY(value) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    kind = PyUnicode_KIND(value);
    data = PyUnicode_DATA(value);
    start = 0;
    end = PyUnicode_GET_LENGTH(value);
    while (start < end && is_ws(PyUnicode_READ(kind, data, start)))
        start++;
    while (end > start && is_ws(PyUnicode_READ(kind, data, end - 1)))
        end--;
    return PyUnicode_Substring(value, start, end);
}

/* -- cseq -------------------------------------------------------------------------- */

/*
 * cseq(text: str) -> tuple[int, str] | None
 * (number, method) when `text` is, between optional SP/HTAB, 1 to 10 digits, one SP and
 * a token (RFC 3261 20.16), the number at most 2**32-1; None for anything else.
 */
static PyObject *cseq(PyObject *module, PyObject *text)
{
    Py_ssize_t n, i = 0, j, digits_end, k;
    const char *s = ascii_text(text, &n);
    unsigned long long value = 0;
    PyObject *method;

    (void)module;
    if (s == NULL)
        Py_RETURN_NONE;
    j = n;
    while (i < j && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (j > i && (s[j - 1] == ' ' || s[j - 1] == '\t'))
        j--;
    digits_end = run(s, i, j, DIGIT);
    if (digits_end == i || digits_end - i > 10 || digits_end >= j || s[digits_end] != ' ')
        Py_RETURN_NONE;
    for (k = i; k < digits_end; k++)
        value = value * 10 + (unsigned long long)(s[k] - '0');
    if (value > 4294967295ULL)
        Py_RETURN_NONE;
    if (run(s, digits_end + 1, j, TOKEN) != j || digits_end + 1 == j)
        Py_RETURN_NONE;
    method = ascii(s + digits_end + 1, j - digits_end - 1);
    if (method == NULL)
        return NULL;
    return Py_BuildValue("(KN)", value, method);
}

/* -- module ------------------------------------------------------------------------ */

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(data, known, key): (start line, keys, lines, body offset), or None."},
    {"via", via, METH_O, "via(text): (transport, host, port, params), or None."},
    {"address", address, METH_O,
     "address(text): (scheme, user, host, port, uri params, header params), or None."},
    {"tag", (PyCFunction)(void (*)(void))tag, METH_FASTCALL,
     "tag(text, slow): the From/To tag, None, or slow."},
    {"single", (PyCFunction)(void (*)(void))single, METH_FASTCALL,
     "single(keys, lines, key): the one value of `key`, stripped, or None."},
    {"cseq", cseq, METH_O, "cseq(text): (number, method), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_scan", "The hot path of ivoz.sip in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void)
{
    int t;
    if (colon == NULL) {
        init_classes();
        colon = PyUnicode_InternFromString(":");
        sip_str = PyUnicode_InternFromString("sip");
        sips_str = PyUnicode_InternFromString("sips");
        content_length = PyUnicode_InternFromString("content-length");
        if (colon == NULL || sip_str == NULL || sips_str == NULL || content_length == NULL)
            return NULL;
        for (t = 0; t < 6; t++) {
            transports[t] = PyUnicode_InternFromString(transport_names[t]);
            if (transports[t] == NULL)
                return NULL;
        }
    }
    return PyModule_Create(&module_def);
}
