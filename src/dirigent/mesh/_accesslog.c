/*
 * The compiled twin of dirigent.mesh.telemetry.python_access_line: one
 * access-log line, the same characters (the unit tests hold the two to each
 * other and to json.JSONEncoder).
 *
 * Why C: with an access log, formatting the line was the largest single
 * cost of a request's end in Python (two float formattings with their
 * trailing zeros stripped, a decode, a %-format of seven fields). Here the
 * floats go through PyOS_double_to_string, the very routine behind Python's
 * "%.6f", and the line is copied once into a string of its final size.
 * Anything off the common case (a time or duration outside the range where
 * "%.6f"/"%.3f" stand for repr(round(x)), text that is not ASCII) is
 * formatted through Python's own calls, exactly as the reference does.
 *
 * It must never keep state between calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* repr(round(value, places)): the reference's answer outside the plain range. */
static PyObject *rounded_repr(PyObject *value, int places) {
    PyObject *rounded = PyObject_CallMethod(value, "__round__", "i", places);
    if (rounded == NULL) {
        return NULL;
    }
    PyObject *text = PyObject_Repr(rounded);
    Py_DECREF(rounded);
    return text;
}

/* ``text`` without trailing zeros, one kept after a bare point ("5." is "5.0"). */
static PyObject *stripped(const char *text, size_t n) {
    while (n > 0 && text[n - 1] == '0') {
        n--;
    }
    if (n > 0 && text[n - 1] == '.') {
        n++;
    }
    return PyUnicode_FromStringAndSize(text, (Py_ssize_t)n);
}

/* ("%.<places>f" % value).rstrip("0"), a zero put back after a bare point. */
static PyObject *fixed_places(double value, int places) {
    char *digits = PyOS_double_to_string(value, 'f', places, 0, NULL);
    if (digits == NULL) {
        return NULL;
    }
    PyObject *text = stripped(digits, strlen(digits));
    PyMem_Free(digits);
    return text;
}

/* The same for any number, through Python's own "%" formatting. */
static PyObject *fixed_places_of(PyObject *value, const char *format) {
    PyObject *spec = PyUnicode_FromString(format);
    PyObject *args = spec ? PyTuple_Pack(1, value) : NULL;
    PyObject *text = args ? PyUnicode_Format(spec, args) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(spec);
    if (text == NULL) {
        return NULL;
    }
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    PyObject *out = utf8 ? stripped(utf8, (size_t)n) : NULL;
    Py_DECREF(text);
    return out;
}

/* Whether low <= value < high, as Python compares them; -1 on error. */
static int within(PyObject *value, double low, double high) {
    PyObject *lower = PyFloat_FromDouble(low), *upper = PyFloat_FromDouble(high);
    int found = -1;
    if (lower != NULL && upper != NULL) {
        found = PyObject_RichCompareBool(lower, value, Py_LE);
        if (found == 1) {
            found = PyObject_RichCompareBool(value, upper, Py_LT);
        }
    }
    Py_XDECREF(lower);
    Py_XDECREF(upper);
    return found;
}

/* The "time" field: six places where they stand for repr(round(start, 6)). */
static PyObject *time_field(PyObject *start) {
    if (PyFloat_CheckExact(start)) {
        double value = PyFloat_AS_DOUBLE(start);
        if (value >= 1e-4 && value < 4294967296.0) {
            return fixed_places(value, 6);
        }
        return rounded_repr(start, 6);
    }
    int plain = within(start, 1e-4, 4294967296.0);
    if (plain < 0) {
        return NULL;
    }
    return plain ? fixed_places_of(start, "%.6f") : rounded_repr(start, 6);
}

/* The "duration_ms" field: three places below 1e9 ms, repr(round(ms, 3)) above. */
static PyObject *duration_field(PyObject *duration) {
    if (PyFloat_CheckExact(duration)) {
        double millis = PyFloat_AS_DOUBLE(duration) * 1000;
        if (millis < 1e9) {
            return fixed_places(millis, 3);
        }
        PyObject *boxed = PyFloat_FromDouble(millis);
        PyObject *text = boxed ? rounded_repr(boxed, 3) : NULL;
        Py_XDECREF(boxed);
        return text;
    }
    PyObject *thousand = PyLong_FromLong(1000);
    PyObject *millis = thousand ? PyNumber_Multiply(duration, thousand) : NULL;
    Py_XDECREF(thousand);
    if (millis == NULL) {
        return NULL;
    }
    PyObject *limit = PyFloat_FromDouble(1e9);
    int plain = limit ? PyObject_RichCompareBool(millis, limit, Py_LT) : -1;
    Py_XDECREF(limit);
    PyObject *text = plain < 0 ? NULL
                     : plain   ? fixed_places_of(millis, "%.3f")
                               : rounded_repr(millis, 3);
    Py_DECREF(millis);
    return text;
}

static int is_ascii_bytes(const char *p, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned char)p[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/* The pieces of the line in order; every other one is a field. */
static const char *const GLUE[] = {
    "{\"time\":", ",", ",", ",\"status\":", ",\"duration_ms\":", ",\"trace_id\":\"",
    "\",\"span_id\":\"", "\"}",
};
#define FIELDS 7

/* line(start, fixed, request, status, duration, traceparent) -> str */
static PyObject *line(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "line() takes start, fixed, request, status, duration, traceparent");
        return NULL;
    }
    PyObject *fixed = args[1], *request = args[2], *status = args[3], *traceparent = args[5];
    if (!PyUnicode_Check(fixed) || !PyUnicode_Check(request) || !PyBytes_Check(traceparent)) {
        PyErr_SetString(PyExc_TypeError, "line(): fixed and request are str, traceparent bytes");
        return NULL;
    }
    PyObject *fields[FIELDS] = {NULL};
    PyObject *out = NULL;
    fields[0] = time_field(args[0]);
    fields[1] = fixed;
    Py_INCREF(fixed);
    fields[2] = request;
    Py_INCREF(request);
    /* "%d" takes anything int() of which is exact, as the reference's % does. */
    fields[3] = PyLong_CheckExact(status) ? PyObject_Str(status) : NULL;
    if (fields[3] == NULL && !PyErr_Occurred()) {
        PyObject *spec = PyUnicode_FromString("%d");
        PyObject *pack = spec ? PyTuple_Pack(1, status) : NULL;
        fields[3] = pack ? PyUnicode_Format(spec, pack) : NULL;
        Py_XDECREF(pack);
        Py_XDECREF(spec);
    }
    fields[4] = fields[0] && fields[3] ? duration_field(args[4]) : NULL;
    if (fields[4] == NULL) {
        goto done;
    }
    /* The ids as slices of traceparent.decode(): positions are bytes when it is ASCII. */
    const char *tp = PyBytes_AS_STRING(traceparent);
    Py_ssize_t tp_len = PyBytes_GET_SIZE(traceparent);
    if (is_ascii_bytes(tp, tp_len)) {
        Py_ssize_t a = tp_len < 3 ? tp_len : 3, b = tp_len < 35 ? tp_len : 35;
        Py_ssize_t c = tp_len < 36 ? tp_len : 36, d = tp_len < 52 ? tp_len : 52;
        fields[5] = PyUnicode_FromStringAndSize(tp + a, b - a);
        fields[6] = PyUnicode_FromStringAndSize(tp + c, d - c);
    } else {
        PyObject *ids = PyUnicode_DecodeUTF8(tp, tp_len, NULL);
        if (ids != NULL) {
            Py_ssize_t n = PyUnicode_GET_LENGTH(ids);
            fields[5] = PyUnicode_Substring(ids, n < 3 ? n : 3, n < 35 ? n : 35);
            fields[6] = PyUnicode_Substring(ids, n < 36 ? n : 36, n < 52 ? n : 52);
            Py_DECREF(ids);
        }
    }
    if (fields[5] == NULL || fields[6] == NULL) {
        goto done;
    }
    int ascii = 1;
    Py_ssize_t size = 0;
    for (int k = 0; k < FIELDS; k++) {
        ascii = ascii && PyUnicode_IS_ASCII(fields[k]);
        size += (Py_ssize_t)strlen(GLUE[k]) + PyUnicode_GET_LENGTH(fields[k]);
    }
    size += (Py_ssize_t)strlen(GLUE[FIELDS]);
    if (ascii) {
        /* The common case: one string of its final size, filled by copies. */
        out = PyUnicode_New(size, 127);
        if (out == NULL) {
            goto done;
        }
        char *w = (char *)PyUnicode_1BYTE_DATA(out);
        for (int k = 0; k <= FIELDS; k++) {
            size_t glue = strlen(GLUE[k]);
            memcpy(w, GLUE[k], glue);
            w += glue;
            if (k < FIELDS) {
                Py_ssize_t n = PyUnicode_GET_LENGTH(fields[k]);
                memcpy(w, PyUnicode_1BYTE_DATA(fields[k]), (size_t)n);
                w += n;
            }
        }
    } else {
        PyObject *parts = PyList_New(0);
        if (parts == NULL) {
            goto done;
        }
        int failed = 0;
        for (int k = 0; k <= FIELDS && !failed; k++) {
            PyObject *glue = PyUnicode_FromString(GLUE[k]);
            failed = glue == NULL || PyList_Append(parts, glue) < 0 ||
                     (k < FIELDS && PyList_Append(parts, fields[k]) < 0);
            Py_XDECREF(glue);
        }
        if (!failed) {
            PyObject *empty = PyUnicode_FromString("");
            out = empty ? PyUnicode_Join(empty, parts) : NULL;
            Py_XDECREF(empty);
        }
        Py_DECREF(parts);
    }
done:
    for (int k = 0; k < FIELDS; k++) {
        Py_XDECREF(fields[k]);
    }
    return out;
}

static PyMethodDef METHODS_TABLE[] = {
    {"line", (PyCFunction)(void (*)(void))line, METH_FASTCALL,
     "One access-log line, as telemetry.python_access_line writes it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_accesslog", "Compiled access-log lines for the data plane.", -1,
    METHODS_TABLE, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accesslog(void) {
    return PyModule_Create(&MODULE);
}
