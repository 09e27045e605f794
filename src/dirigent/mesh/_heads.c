/*
 * The compiled twin of dirigent/mesh/heads.py: the same five functions, the
 * same answers (the unit tests hold both versions to each other, the
 * scanners to httptools, header_block to headers.rewrite and
 * next_traceparent to trace.hop).
 *
 * Why C: the data plane pays for every Python call per request, and a
 * request's head and its response's head are the two places where that
 * cost grows with the message (one httptools callback per header, or one
 * Python operation per line). Here a head is scanned in one pass over its
 * bytes. Anything unusual is not handled here at all: the functions return
 * None and the caller parses with httptools as before, so this file never
 * has to be right about chunked bodies, upgrades, obsolete line folding or
 * odd whitespace, only about recognising the plain case exactly. The
 * forwarded header block and the traceparent are the byte work left on a
 * plain request's way out: written here into one object of its final size.
 *
 * read_request goes one step further for the fast lane: it makes the
 * Request (heads.Request, a slotted Python class) itself, filling the new
 * instance's slots where the class's member descriptors say they are
 * instead of calling its __init__, which costs a Python frame and nine
 * attribute stores per request. The object is an ordinary instance of that
 * class; only how it was filled differs.
 *
 * heads.py binds that class once, at import (bind_request_class), and it
 * never changes after: read_request takes no class, and nothing a call does
 * can swap the class or its offsets under another.
 *
 * It must never allocate more than the objects it returns, keep state
 * between calls (the method and common header-name objects made at import
 * are constants, shared because bytes never change; the bound class and its
 * slot offsets are set once), or accept a head that heads.py would refuse.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <structmember.h>

/* The largest Content-Length taken here: 18 digits cannot overflow. */
#define MAX_LENGTH_DIGITS 18

static unsigned char TOKEN[256]; /* RFC 9110 tchar */
/* ByteOps' attribute names, interned once at import. */
static PyObject *SET_NAME, *ADD_NAME, *REMOVE_NAME;
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
#define METHOD_COUNT 7
/* One bytes object per method, made at import and handed out every time. */
static PyObject *METHOD_OBJECTS[METHOD_COUNT];

/* Header names most requests carry, lowercased; made once, so a request's
 * list reuses them instead of allocating a name per line, and their hashes
 * (looked up in the dropped set and rewrites) are computed once. */
static const char *COMMON_NAMES[] = {
    "host", "user-agent", "accept", "accept-encoding", "accept-language", "content-type",
    "content-length", "connection", "traceparent", "tracestate", "x-request-id",
    "authorization", "cookie", "cache-control", "x-forwarded-for", NULL,
};
#define COMMON_COUNT 15
static PyObject *COMMON_OBJECTS[COMMON_COUNT];

/* The lowercase name at p[0:n] as a bytes object: a shared one if it is common. */
static PyObject *header_name(const unsigned char *p, Py_ssize_t n) {
    char lower[32];
    if (n <= (Py_ssize_t)sizeof(lower)) {
        for (Py_ssize_t c = 0; c < n; c++) {
            lower[c] = (char)((p[c] >= 'A' && p[c] <= 'Z') ? p[c] + 32 : p[c]);
        }
        for (int k = 0; k < COMMON_COUNT; k++) {
            PyObject *known = COMMON_OBJECTS[k];
            if (PyBytes_GET_SIZE(known) == n && memcmp(PyBytes_AS_STRING(known), lower, (size_t)n) == 0) {
                Py_INCREF(known);
                return known;
            }
        }
        return PyBytes_FromStringAndSize(lower, n);
    }
    PyObject *name = PyBytes_FromStringAndSize(NULL, n);
    if (name != NULL) {
        char *out = PyBytes_AS_STRING(name);
        for (Py_ssize_t c = 0; c < n; c++) {
            out[c] = (char)((p[c] >= 'A' && p[c] <= 'Z') ? p[c] + 32 : p[c]);
        }
    }
    return name;
}

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
    int known = -1;
    for (int m = 0; METHODS[m] != NULL; m++) {
        if ((Py_ssize_t)strlen(METHODS[m]) == method_len &&
            memcmp(METHODS[m], p, (size_t)method_len) == 0) {
            known = m;
            break;
        }
    }
    if (known < 0) {
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
    /* where the noted values start (-1: not sent) */
    Py_ssize_t host = -1, trace = -1, conn = -1;
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
            }
            break;
        case 11:
            if (trace < 0 && lower_equals(name, nl, "traceparent")) {
                trace = vs;
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
    PyObject *found = headers ? PyTuple_New(9) : NULL;
    if (found == NULL) {
        Py_XDECREF(headers);
        return NULL;
    }
    /* Filled as it goes: a failure part way leaves NULL items, which the
     * tuple's and the list's deallocation skip. */
    PyTuple_SET_ITEM(found, 2, headers);
    PyObject *host_value = Py_None, *conn_value = Py_None, *trace_value = Py_None;
    i = first;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t ns, nl, vs, vl;
        header_line(p, n, &i, &ns, &nl, &vs, &vl);
        PyObject *name = header_name(p + ns, nl);
        PyObject *value = name ? PyBytes_FromStringAndSize((const char *)p + vs, vl) : NULL;
        PyObject *pair = value ? PyTuple_New(2) : NULL;
        if (pair == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(value);
            Py_DECREF(found);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(headers, k, pair);
        /* The noted values are the very objects in the list: no copies. */
        if (vs == host) {
            host_value = value;
        } else if (vs == conn) {
            conn_value = value;
        } else if (vs == trace) {
            trace_value = value;
        }
    }
    PyObject *end_object = PyLong_FromSsize_t(end);
    PyObject *length_object = end_object ? PyLong_FromLongLong(length) : NULL;
    if (length_object == NULL) {
        Py_XDECREF(end_object);
        Py_DECREF(found);
        return NULL;
    }
    PyObject *method = METHOD_OBJECTS[known];
    PyObject *target = PyBytes_FromStringAndSize((const char *)p + target_start, target_len);
    if (target == NULL) {
        Py_DECREF(end_object);
        Py_DECREF(length_object);
        Py_DECREF(found);
        return NULL;
    }
    PyObject *keep = keep_alive ? Py_True : Py_False;
    Py_INCREF(method);
    Py_INCREF(keep);
    Py_INCREF(host_value);
    Py_INCREF(conn_value);
    Py_INCREF(trace_value);
    PyTuple_SET_ITEM(found, 0, method);
    PyTuple_SET_ITEM(found, 1, target);
    PyTuple_SET_ITEM(found, 3, end_object);
    PyTuple_SET_ITEM(found, 4, length_object);
    PyTuple_SET_ITEM(found, 5, keep);
    PyTuple_SET_ITEM(found, 6, host_value);
    PyTuple_SET_ITEM(found, 7, conn_value);
    PyTuple_SET_ITEM(found, 8, trace_value);
    return found;
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
    PyObject *found = PyTuple_New(3);
    PyObject *status_object = found ? PyLong_FromLong(status) : NULL;
    PyObject *end_object = status_object ? PyLong_FromSsize_t(i) : NULL;
    PyObject *length_object = end_object ? PyLong_FromLongLong(length) : NULL;
    if (length_object == NULL) {
        Py_XDECREF(end_object);
        Py_XDECREF(status_object);
        Py_XDECREF(found);
        return NULL;
    }
    PyTuple_SET_ITEM(found, 0, status_object);
    PyTuple_SET_ITEM(found, 1, end_object);
    PyTuple_SET_ITEM(found, 2, length_object);
    return found;
}

/* -- the forwarded header block ------------------------------------------ */

/* A header as it goes out: borrowed name and value (kept alive by the
 * caller's list, the ops or the owned list of set pairs). */
typedef struct {
    PyObject *name;
    PyObject *value;
} Line;

/* ``name`` in lower case: a new reference, the same object when it has no
 * upper-case letter (names from both parsers are lower case already). */
static PyObject *lowered(PyObject *name) {
    const char *p = PyBytes_AS_STRING(name);
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    Py_ssize_t i = 0;
    while (i < n && !(p[i] >= 'A' && p[i] <= 'Z')) {
        i++;
    }
    if (i == n) {
        Py_INCREF(name);
        return name;
    }
    PyObject *out = PyBytes_FromStringAndSize(p, n);
    if (out == NULL) {
        return NULL;
    }
    char *q = PyBytes_AS_STRING(out);
    for (; i < n; i++) {
        if (q[i] >= 'A' && q[i] <= 'Z') {
            q[i] = (char)(q[i] + 32);
        }
    }
    return out;
}

/* A (bytes, bytes) pair's items, borrowed; 0 with TypeError set otherwise. */
static int pair_of(PyObject *pair, PyObject **name, PyObject **value) {
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
        PyErr_SetString(PyExc_TypeError, "headers are (bytes, bytes) pairs");
        return 0;
    }
    *name = PyTuple_GET_ITEM(pair, 0);
    *value = PyTuple_GET_ITEM(pair, 1);
    return 1;
}

/* Whether the bytes ``key`` equals one of the first ``count`` of ``keys``. */
static int was_placed(PyObject **keys, Py_ssize_t count, PyObject *key) {
    Py_ssize_t n = PyBytes_GET_SIZE(key);
    for (Py_ssize_t p = 0; p < count; p++) {
        if (PyBytes_GET_SIZE(keys[p]) == n &&
            memcmp(PyBytes_AS_STRING(keys[p]), PyBytes_AS_STRING(key), (size_t)n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Whether ``name`` (lowered) is in the set ``names``: 1, 0, or -1 on error. */
static int lowered_in(PyObject *name, PyObject *names) {
    PyObject *key = lowered(name);
    if (key == NULL) {
        return -1;
    }
    int found = PySet_Contains(names, key);
    Py_DECREF(key);
    return found;
}

/*
 * header_block(headers, dropped, ops, *tail): heads.header_block's twin.
 * The lines go into a C array first and the bytes are allocated once at
 * their final size: no list of parts, no join.
 */
static PyObject *header_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs < 3) {
        PyErr_SetString(PyExc_TypeError, "header_block() takes headers, dropped, ops, *tail");
        return NULL;
    }
    PyObject *dropped = args[1], *ops = args[2];
    if (!PyAnySet_Check(dropped)) {
        PyErr_SetString(PyExc_TypeError, "header_block(): dropped must be a set");
        return NULL;
    }
    for (Py_ssize_t t = 3; t < nargs; t++) {
        if (!PyBytes_Check(args[t])) {
            PyErr_SetString(PyExc_TypeError, "header_block(): the tail is bytes");
            return NULL;
        }
    }
    PyObject *headers = PySequence_Fast(args[0], "header_block(): headers must be a sequence");
    if (headers == NULL) {
        return NULL;
    }
    PyObject *replaced = NULL, *added = NULL, *removed = NULL, *result = NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    PyObject **given = PySequence_Fast_ITEMS(headers);
    Line *lines = NULL;
    /* The lowered names of the set headers placed so far (owned references). */
    PyObject **placed = NULL;
    Py_ssize_t used = 0, room = count, settable = 0, placed_count = 0;
    if (ops != Py_None) {
        replaced = PyObject_GetAttr(ops, SET_NAME);
        added = replaced ? PyObject_GetAttr(ops, ADD_NAME) : NULL;
        removed = added ? PyObject_GetAttr(ops, REMOVE_NAME) : NULL;
        if (removed == NULL) {
            goto done;
        }
        if (!PyTuple_Check(added) || !PyAnySet_Check(removed)) {
            PyErr_SetString(PyExc_TypeError, "header_block(): ops must be ByteOps");
            goto done;
        }
        settable = PyObject_Length(replaced);
        if (settable < 0) {
            goto done;
        }
        room += settable + PyTuple_GET_SIZE(added);
    }
    lines = PyMem_Malloc(sizeof(Line) * (size_t)(room > 0 ? room : 1));
    placed = PyMem_Malloc(sizeof(PyObject *) * (size_t)(settable > 0 ? settable : 1));
    if (lines == NULL || placed == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *name, *value;
        if (!pair_of(given[k], &name, &value)) {
            goto done;
        }
        int drop = PySet_Contains(dropped, name);
        if (drop < 0) {
            goto done;
        }
        if (drop) {
            continue;
        }
        if (settable > 0) {
            /* As rewrite_bytes: a set header takes the place of its first
             * value, and its later values go. */
            PyObject *key = lowered(name);
            if (key == NULL) {
                goto done;
            }
            int hit = PySequence_Contains(replaced, key);
            if (hit <= 0) {
                Py_DECREF(key);
                if (hit < 0) {
                    goto done;
                }
            } else {
                if (was_placed(placed, placed_count, key)) {
                    Py_DECREF(key);
                    continue;
                }
                if (placed_count >= settable) {
                    Py_DECREF(key);
                    PyErr_SetString(PyExc_RuntimeError, "header_block(): ops changed");
                    goto done;
                }
                PyObject *pair = PyObject_GetItem(replaced, key);
                placed[placed_count++] = key; /* owned from here on */
                if (pair == NULL) {
                    goto done;
                }
                /* The pair is also held by the mapping, which outlives this call. */
                Py_DECREF(pair);
                if (!pair_of(pair, &lines[used].name, &lines[used].value)) {
                    goto done;
                }
                used++;
                continue;
            }
        }
        lines[used].name = name;
        lines[used].value = value;
        used++;
    }
    if (ops != Py_None) {
        if (placed_count < settable) {
            /* The set headers the request did not have, in the mapping's order. */
            PyObject *keys = PyObject_GetIter(replaced);
            if (keys == NULL) {
                goto done;
            }
            PyObject *key;
            while ((key = PyIter_Next(keys)) != NULL) {
                int seen = PyBytes_Check(key) && was_placed(placed, placed_count, key);
                PyObject *pair = PyObject_GetItem(replaced, key);
                Py_DECREF(key);
                if (pair == NULL) {
                    break;
                }
                Py_DECREF(pair); /* held by the mapping */
                if (!seen) {
                    if (used >= room) {
                        PyErr_SetString(PyExc_RuntimeError, "header_block(): ops changed");
                        break;
                    }
                    if (!pair_of(pair, &lines[used].name, &lines[used].value)) {
                        break;
                    }
                    used++;
                }
            }
            Py_DECREF(keys);
            if (PyErr_Occurred()) {
                goto done;
            }
        }
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(added); k++) {
            if (used >= room) {
                PyErr_SetString(PyExc_RuntimeError, "header_block(): ops changed");
                goto done;
            }
            if (!pair_of(PyTuple_GET_ITEM(added, k), &lines[used].name, &lines[used].value)) {
                goto done;
            }
            used++;
        }
        if (PySet_GET_SIZE(removed) > 0) {
            Py_ssize_t kept = 0;
            for (Py_ssize_t k = 0; k < used; k++) {
                int gone = lowered_in(lines[k].name, removed);
                if (gone < 0) {
                    goto done;
                }
                if (!gone) {
                    lines[kept++] = lines[k];
                }
            }
            used = kept;
        }
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t k = 0; k < used; k++) {
        size += PyBytes_GET_SIZE(lines[k].name) + PyBytes_GET_SIZE(lines[k].value) + 4;
    }
    for (Py_ssize_t t = 3; t < nargs; t++) {
        size += PyBytes_GET_SIZE(args[t]);
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        goto done;
    }
    char *out = PyBytes_AS_STRING(result);
    for (Py_ssize_t k = 0; k < used; k++) {
        Py_ssize_t nl = PyBytes_GET_SIZE(lines[k].name), vl = PyBytes_GET_SIZE(lines[k].value);
        memcpy(out, PyBytes_AS_STRING(lines[k].name), (size_t)nl);
        out += nl;
        *out++ = ':';
        *out++ = ' ';
        memcpy(out, PyBytes_AS_STRING(lines[k].value), (size_t)vl);
        out += vl;
        *out++ = '\r';
        *out++ = '\n';
    }
    for (Py_ssize_t t = 3; t < nargs; t++) {
        memcpy(out, PyBytes_AS_STRING(args[t]), (size_t)PyBytes_GET_SIZE(args[t]));
        out += PyBytes_GET_SIZE(args[t]);
    }
done:
    PyMem_Free(lines);
    for (Py_ssize_t p = 0; p < placed_count; p++) {
        Py_DECREF(placed[p]);
    }
    PyMem_Free(placed);
    Py_XDECREF(removed);
    Py_XDECREF(added);
    Py_XDECREF(replaced);
    Py_DECREF(headers);
    return result;
}

/* -- the traceparent sent on ---------------------------------------------- */

#define TRACEPARENT_LENGTH 55

static int is_blank(unsigned char c) {
    /* what bytes.strip() removes */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

static int all_hex(const char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static int all_zero(const char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] != '0') {
            return 0;
        }
    }
    return 1;
}

/* trace.parse: 1 with the stripped, lowered value in out[55], 0 if invalid. */
static int parse_traceparent(PyObject *incoming, char *out) {
    if (!PyBytes_Check(incoming) || PyBytes_GET_SIZE(incoming) < TRACEPARENT_LENGTH) {
        return 0;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(incoming);
    Py_ssize_t start = 0, end = PyBytes_GET_SIZE(incoming);
    while (start < end && is_blank(p[start])) {
        start++;
    }
    while (end > start && is_blank(p[end - 1])) {
        end--;
    }
    Py_ssize_t n = end - start;
    if (n < TRACEPARENT_LENGTH) {
        return 0; /* the slices below would come out short and fail their checks */
    }
    for (Py_ssize_t i = 0; i < TRACEPARENT_LENGTH; i++) {
        unsigned char c = p[start + i];
        out[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    /* A future version may append fields after the flags; version 00 may not. */
    if (n != TRACEPARENT_LENGTH && (memcmp(out, "00", 2) == 0 || p[start + TRACEPARENT_LENGTH] != '-')) {
        return 0;
    }
    if (out[2] != '-' || out[35] != '-' || out[52] != '-') {
        return 0;
    }
    if (memcmp(out, "ff", 2) == 0 || !all_hex(out, 2) || !all_hex(out + 3, 32) ||
        !all_hex(out + 36, 16) || !all_hex(out + 53, 2)) {
        return 0;
    }
    return !all_zero(out + 3, 32) && !all_zero(out + 36, 16);
}

/* Digits of a non-negative int below 2**64, or -1 (no error set) if it is not one. */
static int word_of(PyObject *number, unsigned long long *word) {
    if (!PyLong_Check(number)) {
        return -1;
    }
    *word = PyLong_AsUnsignedLongLong(number);
    if (*word == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear(); /* negative or too large: formatted by Python instead */
        return -1;
    }
    return 0;
}

/*
 * A new id: bits(size) or 1, as ``width`` hex digits into ``out`` (returns
 * 0), or, for a draw that is not an int of at most ``width`` digits, as
 * Python's "%0*x" writes it into a new bytes object in ``*big`` (returns 1);
 * -1 on error.
 */
static int new_id(PyObject *bits, int size, char *out, int width, PyObject **big) {
    static const char HEX[] = "0123456789abcdef";
    PyObject *size_object = PyLong_FromLong(size);
    PyObject *drawn = size_object ? PyObject_CallOneArg(bits, size_object) : NULL;
    Py_XDECREF(size_object);
    if (drawn == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(drawn);
    if (truth <= 0) {
        Py_DECREF(drawn);
        if (truth < 0) {
            return -1;
        }
        drawn = PyLong_FromLong(1); /* zero is the one invalid id */
        if (drawn == NULL) {
            return -1;
        }
    }
    unsigned long long low = 0, high = 0;
    int fits;
    if (width <= 16) {
        fits = word_of(drawn, &low) == 0;
    } else {
        fits = PyLong_Check(drawn);
        if (fits) {
            PyObject *shift = PyLong_FromLong(64);
            PyObject *upper = shift ? PyNumber_Rshift(drawn, shift) : NULL;
            Py_XDECREF(shift);
            if (upper == NULL) {
                Py_DECREF(drawn);
                return -1;
            }
            fits = word_of(upper, &high) == 0; /* a negative draw shifts to a negative */
            Py_DECREF(upper);
            low = PyLong_AsUnsignedLongLongMask(drawn);
        }
    }
    if (fits) {
        for (int i = width - 1, d = 0; i >= 0; i--, d++) {
            unsigned long long word = d < 16 ? low : high;
            out[i] = HEX[(word >> (4 * (d % 16))) & 0xf];
        }
        Py_DECREF(drawn);
        return 0;
    }
    PyObject *index = PyNumber_Index(drawn);
    Py_DECREF(drawn);
    PyObject *spec = index ? PyUnicode_FromFormat("0%dx", width) : NULL;
    PyObject *text = spec ? PyObject_Format(index, spec) : NULL;
    Py_XDECREF(spec);
    Py_XDECREF(index);
    if (text == NULL) {
        return -1;
    }
    *big = PyUnicode_AsASCIIString(text);
    Py_DECREF(text);
    return *big == NULL ? -1 : 1;
}

/* "00-<trace id>-<span id>-<flags>" from its three parts. */
static PyObject *traceparent_of(const char *trace_id, Py_ssize_t trace_len, const char *span,
                                Py_ssize_t span_len, const char *flags) {
    PyObject *value = PyBytes_FromStringAndSize(NULL, 3 + trace_len + 1 + span_len + 3);
    if (value == NULL) {
        return NULL;
    }
    char *v = PyBytes_AS_STRING(value);
    memcpy(v, "00-", 3);
    v += 3;
    memcpy(v, trace_id, (size_t)trace_len);
    v += trace_len;
    *v++ = '-';
    memcpy(v, span, (size_t)span_len);
    v += span_len;
    *v++ = '-';
    memcpy(v, flags, 2);
    return value;
}

/* next_traceparent(incoming, bits): trace.next_traceparent's twin, the same
 * draws in the same order. */
static PyObject *next_traceparent(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "next_traceparent() takes incoming, bits");
        return NULL;
    }
    PyObject *incoming = args[0], *bits = args[1];
    char span_digits[16], trace_digits[32], parsed[TRACEPARENT_LENGTH];
    PyObject *span_big = NULL, *trace_big = NULL, *value = NULL, *parent = NULL, *out = NULL;
    int span_kind = new_id(bits, 64, span_digits, 16, &span_big);
    if (span_kind < 0) {
        return NULL;
    }
    const char *span = span_kind ? PyBytes_AS_STRING(span_big) : span_digits;
    Py_ssize_t span_len = span_kind ? PyBytes_GET_SIZE(span_big) : 16;
    if (incoming != Py_None && parse_traceparent(incoming, parsed)) {
        parent = PyBytes_FromStringAndSize(parsed + 36, 16);
        value = parent ? traceparent_of(parsed + 3, 32, span, span_len, parsed + 53) : NULL;
    } else {
        int trace_kind = new_id(bits, 128, trace_digits, 32, &trace_big);
        if (trace_kind >= 0) {
            value = trace_kind ? traceparent_of(PyBytes_AS_STRING(trace_big),
                                                PyBytes_GET_SIZE(trace_big), span, span_len, "01")
                               : traceparent_of(trace_digits, 32, span, span_len, "01");
        }
        parent = Py_None;
        Py_INCREF(parent);
    }
    if (value != NULL && parent != NULL) {
        out = PyTuple_Pack(2, value, parent);
    }
    Py_XDECREF(value);
    Py_XDECREF(parent);
    Py_XDECREF(span_big);
    Py_XDECREF(trace_big);
    return out;
}

/* read_request: the Request a whole, plain request makes, or None. */

/* Request's slots, in the order read_request fills them. */
static const char *REQUEST_SLOTS[] = {
    "method", "target", "headers", "body", "keep_alive", "connection", "host", "traceparent",
    "upgrade", NULL,
};
#define REQUEST_SLOT_COUNT 9
/* The class read_request makes (a strong reference), and its slots' offsets:
 * set once by bind_request_class, never changed after. */
static PyTypeObject *REQUEST_CLASS = NULL;
static Py_ssize_t REQUEST_OFFSETS[REQUEST_SLOT_COUNT];

/* bind_request_class(cls): make read_request fill instances of ``cls``, a
 * class of exactly such object slots. TypeError if it is not one, or if
 * another class is bound already; binding the same class again is a no-op. */
static PyObject *bind_request_class(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls) || ((PyTypeObject *)cls)->tp_dictoffset != 0) {
        PyErr_SetString(PyExc_TypeError, "bind_request_class() needs a class with __slots__ only");
        return NULL;
    }
    Py_ssize_t offsets[REQUEST_SLOT_COUNT];
    for (int k = 0; k < REQUEST_SLOT_COUNT; k++) {
        PyObject *descriptor = PyObject_GetAttrString(cls, REQUEST_SLOTS[k]);
        if (descriptor == NULL) {
            return NULL;
        }
        /* A slot of this very class or a base (a descriptor borrowed from
         * another class would point outside its objects), within its size. */
        int ok = Py_IS_TYPE(descriptor, &PyMemberDescr_Type) &&
                 PyType_IsSubtype((PyTypeObject *)cls, PyDescr_TYPE(descriptor)) &&
                 ((PyMemberDescrObject *)descriptor)->d_member->type == T_OBJECT_EX &&
                 !(((PyMemberDescrObject *)descriptor)->d_member->flags & READONLY) &&
                 ((PyMemberDescrObject *)descriptor)->d_member->offset >= (Py_ssize_t)sizeof(PyObject) &&
                 ((PyMemberDescrObject *)descriptor)->d_member->offset + (Py_ssize_t)sizeof(PyObject *) <=
                     ((PyTypeObject *)cls)->tp_basicsize;
        if (ok) {
            offsets[k] = ((PyMemberDescrObject *)descriptor)->d_member->offset;
        }
        Py_DECREF(descriptor);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "bind_request_class(): %s is not a slot", REQUEST_SLOTS[k]);
            return NULL;
        }
    }
    if (REQUEST_CLASS != NULL) {
        if ((PyTypeObject *)cls != REQUEST_CLASS) {
            PyErr_SetString(PyExc_TypeError, "bind_request_class(): another class is bound already");
            return NULL;
        }
        Py_RETURN_NONE;
    }
    memcpy(REQUEST_OFFSETS, offsets, sizeof(offsets));
    Py_INCREF(cls);
    REQUEST_CLASS = (PyTypeObject *)cls;
    Py_RETURN_NONE;
}

/* read_request(data, max_body): the bound class's instance for the one whole,
 * plain request data holds, or None. */
static PyObject *read_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_request() takes bytes and a size");
        return NULL;
    }
    if (REQUEST_CLASS == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "read_request(): no class bound (bind_request_class)");
        return NULL;
    }
    Py_ssize_t max_body = PyLong_AsSsize_t(args[1]);
    if (max_body == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *found = scan_request(module, args[0]);
    if (found == NULL || found == Py_None) {
        return found;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(found, 3));
    long long length = PyLong_AsLongLong(PyTuple_GET_ITEM(found, 4));
    /* Both were made from a Py_ssize_t and at most 18 digits: no error here. */
    if ((long long)(size - end) != length || length > (long long)max_body) {
        Py_DECREF(found);
        Py_RETURN_NONE;
    }
    PyObject *body = PyBytes_FromStringAndSize(PyBytes_AS_STRING(args[0]) + end, (Py_ssize_t)length);
    PyObject *request = body ? REQUEST_CLASS->tp_alloc(REQUEST_CLASS, 0) : NULL;
    if (request == NULL) {
        Py_XDECREF(body);
        Py_DECREF(found);
        return NULL;
    }
    /* In REQUEST_SLOTS' order: the scan's method, target, headers, then the
     * body, keep-alive, connection, host, traceparent, and no upgrade. */
    PyObject *values[REQUEST_SLOT_COUNT] = {
        PyTuple_GET_ITEM(found, 0), PyTuple_GET_ITEM(found, 1), PyTuple_GET_ITEM(found, 2),
        body, PyTuple_GET_ITEM(found, 5), PyTuple_GET_ITEM(found, 7),
        PyTuple_GET_ITEM(found, 6), PyTuple_GET_ITEM(found, 8), Py_None,
    };
    for (int k = 0; k < REQUEST_SLOT_COUNT; k++) {
        if (k != 3) {
            Py_INCREF(values[k]); /* the body's reference is handed over as it is */
        }
        *(PyObject **)((char *)request + REQUEST_OFFSETS[k]) = values[k];
    }
    Py_DECREF(found);
    return request;
}

static PyMethodDef METHODS_TABLE[] = {
    {"scan_request", scan_request, METH_O, "A plain, whole request head at the start of data, or None."},
    {"read_request", (PyCFunction)(void (*)(void))read_request, METH_FASTCALL,
     "The bound class's Request that data holds whole and alone, or None."},
    {"bind_request_class", bind_request_class, METH_O,
     "Make read_request fill instances of this class (once, at import)."},
    {"scan_response", scan_response, METH_O, "A response head that may pass on unchanged, or None."},
    {"header_block", (PyCFunction)(void (*)(void))header_block, METH_FASTCALL,
     "The forwarded header lines of a request, then the tail, as one bytes object."},
    {"next_traceparent", (PyCFunction)(void (*)(void))next_traceparent, METH_FASTCALL,
     "This hop's traceparent and its parent's span id (trace.next_traceparent)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_heads", "Compiled message-head scanning for the data plane.", -1,
    METHODS_TABLE, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__heads(void) {
    fill_tables();
    for (int m = 0; m < METHOD_COUNT; m++) {
        METHOD_OBJECTS[m] = PyBytes_FromString(METHODS[m]);
        if (METHOD_OBJECTS[m] == NULL) {
            return NULL;
        }
    }
    for (int k = 0; k < COMMON_COUNT; k++) {
        COMMON_OBJECTS[k] = PyBytes_FromString(COMMON_NAMES[k]);
        if (COMMON_OBJECTS[k] == NULL) {
            return NULL;
        }
    }
    SET_NAME = PyUnicode_InternFromString("set");
    ADD_NAME = PyUnicode_InternFromString("add");
    REMOVE_NAME = PyUnicode_InternFromString("remove");
    if (SET_NAME == NULL || ADD_NAME == NULL || REMOVE_NAME == NULL) {
        return NULL;
    }
    return PyModule_Create(&MODULE);
}
