/*
 * The compiled twin of dirigent/mesh/heads.py: the same two functions, the
 * same answers (the unit tests hold both to each other and to httptools).
 *
 * Why C: the data plane pays for every Python call per request, and a
 * request's head and its response's head are the two places where that
 * cost grows with the message (one httptools callback per header, or one
 * Python operation per line). Here a head is scanned in one pass over its
 * bytes. Anything unusual is not handled here at all: the functions return
 * None and the caller parses with httptools as before, so this file never
 * has to be right about chunked bodies, upgrades, obsolete line folding or
 * odd whitespace, only about recognising the plain case exactly.
 *
 * It must never allocate more than the objects it returns, keep state
 * between calls, or accept a head that heads.py would refuse.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* The largest Content-Length taken here: 18 digits cannot overflow. */
#define MAX_LENGTH_DIGITS 18

static unsigned char TOKEN[256]; /* RFC 9110 tchar */
static unsigned char VALUE[256]; /* VCHAR, SP and HTAB (no obs-text) */
static unsigned char TARGET[256]; /* what an origin-form target may hold here */

static void fill_tables(void) {
    const char *token_extra = "!#$%&'*+-.^_`|~";
    const char *target_extra = "-._~:/?[]@!$&'()*+,;=%";
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        TOKEN[c] = alnum || (c != 0 && strchr(token_extra, c) != NULL);
        TARGET[c] = alnum || (c != 0 && strchr(target_extra, c) != NULL);
        VALUE[c] = (c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t';
    }
}

static int lower_equals(const unsigned char *p, Py_ssize_t n, const char *word) {
    Py_ssize_t i = 0;
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + 32);
        }
        if (word[i] == '\0' || (unsigned char)word[i] != c) {
            return 0;
        }
    }
    return word[i] == '\0';
}

/* Scan a Content-Length value; -1 if it is not plain digits we can hold. */
static long long parse_length(const unsigned char *p, Py_ssize_t n) {
    if (n == 0 || n > MAX_LENGTH_DIGITS) {
        return -1;
    }
    long long value = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        value = value * 10 + (p[i] - '0');
    }
    return value;
}

/*
 * One header line at p[*at]: name, colon, optional leading blanks, value,
 * CRLF. Fills the name and value spans and moves *at past the line; returns
 * 0 for a line that is not plain (or not all here), 1 otherwise.
 */
static int header_line(
    const unsigned char *p, Py_ssize_t n, Py_ssize_t *at,
    Py_ssize_t *name_start, Py_ssize_t *name_len, Py_ssize_t *value_start, Py_ssize_t *value_len
) {
    Py_ssize_t i = *at;
    Py_ssize_t start = i;
    while (i < n && TOKEN[p[i]]) {
        i++;
    }
    if (i == start || i >= n || p[i] != ':') {
        return 0;
    }
    *name_start = start;
    *name_len = i - start;
    i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    Py_ssize_t vstart = i;
    while (i < n && VALUE[p[i]]) {
        i++;
    }
    if (i + 1 >= n || p[i] != '\r' || p[i + 1] != '\n' || i == vstart) {
        return 0;
    }
    if (p[i - 1] == ' ' || p[i - 1] == '\t') {
        return 0; /* trailing blanks: httptools keeps them, heads.py does not guess */
    }
    *value_start = vstart;
    *value_len = i - vstart;
    *at = i + 2;
    return 1;
}

static const char *METHODS[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", NULL};

static PyObject *scan_request(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan_request() takes bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);

    /* Request line: METHOD SP /target SP HTTP/1.1 CRLF */
    Py_ssize_t i = 0;
    while (i < n && i < 8 && p[i] >= 'A' && p[i] <= 'Z') {
        i++;
    }
    if (i >= n || p[i] != ' ') {
        Py_RETURN_NONE;
    }
    Py_ssize_t method_len = i;
    int known = 0;
    for (const char **m = METHODS; *m != NULL; m++) {
        if ((Py_ssize_t)strlen(*m) == method_len && memcmp(*m, p, (size_t)method_len) == 0) {
            known = 1;
            break;
        }
    }
    if (!known) {
        Py_RETURN_NONE;
    }
    Py_ssize_t target_start = ++i;
    if (i >= n || p[i] != '/') {
        Py_RETURN_NONE;
    }
    while (i < n && TARGET[p[i]]) {
        i++;
    }
    Py_ssize_t target_len = i - target_start;
    if (n - i < 11 || memcmp(p + i, " HTTP/1.1\r\n", 11) != 0) {
        Py_RETURN_NONE;
    }
    i += 11;

    /* Header lines up to the blank one. The spans are checked first, then
     * the objects made, so a head that turns out not to be plain costs no
     * allocation. */
    Py_ssize_t first = i;
    Py_ssize_t count = 0;
    Py_ssize_t host = -1, host_len = 0, trace = -1, trace_len = 0, conn = -1, conn_len = 0;
    long long length = 0;
    int has_length = 0, keep_alive = 1;
    for (;;) {
        if (n - i >= 2 && p[i] == '\r' && p[i + 1] == '\n') {
            i += 2;
            break;
        }
        Py_ssize_t ns, nl, vs, vl;
        if (!header_line(p, n, &i, &ns, &nl, &vs, &vl)) {
            Py_RETURN_NONE;
        }
        count++;
        const unsigned char *name = p + ns;
        switch (nl) {
        case 4:
            if (host < 0 && lower_equals(name, nl, "host")) {
                host = vs;
                host_len = vl;
            }
            break;
        case 7:
            if (lower_equals(name, nl, "upgrade")) {
                Py_RETURN_NONE;
            }
            break;
        case 10:
            if (lower_equals(name, nl, "connection")) {
                /* Only the two plain values: httptools reads lists of tokens
                 * in ways not worth copying here. A second line, or a value
                 * naming other headers, goes to httptools. */
                if (conn >= 0) {
                    Py_RETURN_NONE;
                }
                if (lower_equals(p + vs, vl, "close")) {
                    keep_alive = 0;
                } else if (!lower_equals(p + vs, vl, "keep-alive")) {
                    Py_RETURN_NONE;
                }
                conn = vs;
                conn_len = vl;
            }
            break;
        case 11:
            if (trace < 0 && lower_equals(name, nl, "traceparent")) {
                trace = vs;
                trace_len = vl;
            }
            break;
        case 14:
            if (lower_equals(name, nl, "content-length")) {
                if (has_length) {
                    Py_RETURN_NONE;
                }
                length = parse_length(p + vs, vl);
                if (length < 0) {
                    Py_RETURN_NONE;
                }
                has_length = 1;
            }
            break;
        case 17:
            if (lower_equals(name, nl, "transfer-encoding")) {
                Py_RETURN_NONE;
            }
            break;
        default:
            break;
        }
    }
    Py_ssize_t end = i;

    PyObject *headers = PyList_New(count);
    if (headers == NULL) {
        return NULL;
    }
    i = first;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t ns, nl, vs, vl;
        header_line(p, n, &i, &ns, &nl, &vs, &vl);
        PyObject *name = PyBytes_FromStringAndSize(NULL, nl);
        PyObject *value = PyBytes_FromStringAndSize((const char *)p + vs, vl);
        if (name == NULL || value == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(value);
            Py_DECREF(headers);
            return NULL;
        }
        char *lower = PyBytes_AS_STRING(name);
        for (Py_ssize_t c = 0; c < nl; c++) {
            unsigned char ch = p[ns + c];
            lower[c] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name);
            Py_DECREF(value);
            Py_DECREF(headers);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(headers, k, pair);
    }
    const char *s = (const char *)p;
    return Py_BuildValue(
        "(y#y#NnLOy#y#y#)",
        s, method_len,
        s + target_start, target_len,
        headers,
        end,
        length,
        keep_alive ? Py_True : Py_False,
        host >= 0 ? s + host : NULL, host_len,
        conn >= 0 ? s + conn : NULL, conn_len,
        trace >= 0 ? s + trace : NULL, trace_len
    );
}

static PyObject *scan_response(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan_response() takes bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);

    /* Status line: HTTP/1.1 SP 3DIGIT [SP reason] CRLF */
    if (n < 14 || memcmp(p, "HTTP/1.1 ", 9) != 0) {
        Py_RETURN_NONE;
    }
    for (int d = 9; d < 12; d++) {
        if (p[d] < '0' || p[d] > '9') {
            Py_RETURN_NONE;
        }
    }
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    /* 1xx, 204 and 304 are framed by their status, not their length. */
    if (status < 200 || status > 599 || status == 204 || status == 304) {
        Py_RETURN_NONE;
    }
    Py_ssize_t i = 12;
    if (p[i] == ' ') {
        i++;
        while (i < n && VALUE[p[i]]) {
            i++;
        }
    }
    if (n - i < 2 || p[i] != '\r' || p[i + 1] != '\n') {
        Py_RETURN_NONE;
    }
    i += 2;

    long long length = -1;
    for (;;) {
        if (n - i >= 2 && p[i] == '\r' && p[i + 1] == '\n') {
            i += 2;
            break;
        }
        Py_ssize_t ns, nl, vs, vl;
        if (!header_line(p, n, &i, &ns, &nl, &vs, &vl)) {
            Py_RETURN_NONE;
        }
        const unsigned char *name = p + ns;
        /* A hop-by-hop header means the head cannot pass on unchanged. */
        switch (nl) {
        case 2:
            if (lower_equals(name, nl, "te")) {
                Py_RETURN_NONE;
            }
            break;
        case 7:
            if (lower_equals(name, nl, "trailer") || lower_equals(name, nl, "upgrade")) {
                Py_RETURN_NONE;
            }
            break;
        case 10:
            if (lower_equals(name, nl, "connection") || lower_equals(name, nl, "keep-alive")) {
                Py_RETURN_NONE;
            }
            break;
        case 14:
            if (lower_equals(name, nl, "content-length")) {
                if (length >= 0) {
                    Py_RETURN_NONE;
                }
                length = parse_length(p + vs, vl);
                if (length < 0) {
                    Py_RETURN_NONE;
                }
            }
            break;
        case 16:
            if (lower_equals(name, nl, "proxy-connection")) {
                Py_RETURN_NONE;
            }
            break;
        case 17:
            if (lower_equals(name, nl, "transfer-encoding")) {
                Py_RETURN_NONE;
            }
            break;
        case 19:
            if (lower_equals(name, nl, "proxy-authorization")) {
                Py_RETURN_NONE;
            }
            break;
        default:
            break;
        }
    }
    if (length < 0) {
        Py_RETURN_NONE; /* framed by the connection's end: httptools's business */
    }
    return Py_BuildValue("(inL)", status, i, length);
}

static PyMethodDef METHODS_TABLE[] = {
    {"scan_request", scan_request, METH_O, "A plain, whole request head at the start of data, or None."},
    {"scan_response", scan_response, METH_O, "A response head that may pass on unchanged, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_heads", "Compiled message-head scanning for the data plane.", -1,
    METHODS_TABLE, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__heads(void) {
    fill_tables();
    return PyModule_Create(&MODULE);
}
