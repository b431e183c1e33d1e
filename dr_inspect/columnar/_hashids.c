/* Dense ids of 64-bit hash keys in order of first appearance (pd.factorize(keys)[0]) in one pass
 * over an open-addressing table, the slots of keys a few rows ahead fetched meanwhile: a table of
 * a million keys is mostly cache misses, and this keeps several of them in flight.
 *
 * Optional, as the decoder's kernels: dr_inspect/columnar/ids.py falls back to its numpy code
 * (a radix split and pandas' factorize) where this module was not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AHEAD 16   /* rows whose slots are fetched ahead of the one being looked up */

static inline uint64_t slot_of(uint64_t key, int bits) {
    /* the keys are hashes already; the multiply spreads any pattern in their top bits */
    return (key * 0x9E3779B97F4A7C15ULL) >> (64 - bits);
}

PyDoc_STRVAR(first_appearance_ids_doc,
"first_appearance_ids(keys, ids) -> n\n"
"ids[i] = the number of distinct keys seen before the first row equal to keys[i] (uint64 keys;\n"
"ids: int32 or int64, as many rows). Returns the number of distinct keys.");

static PyObject *first_appearance_ids(PyObject *self, PyObject *args) {
    Py_buffer keys_b, ids_b;
    if (!PyArg_ParseTuple(args, "y*w*", &keys_b, &ids_b))
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = keys_b.len / 8;
    const Py_ssize_t width = n ? ids_b.len / n : 4;
    if (keys_b.len % 8 || (width != 4 && width != 8) || ids_b.len != n * width
        || n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "keys: uint64; ids: int32 or int64 of the same length");
        goto done;
    }
    int bits = 4;
    while (((Py_ssize_t)1 << bits) < 2 * n)       /* at most half full */
        bits++;
    const uint64_t size = (uint64_t)1 << bits, mask = size - 1;
    uint64_t *slot_key = malloc(size * sizeof(uint64_t));
    int32_t *slot_id = malloc(size * sizeof(int32_t));
    if (!slot_key || !slot_id) {
        free(slot_key);
        free(slot_id);
        PyErr_NoMemory();
        goto done;
    }
    const uint64_t *keys = keys_b.buf;
    int32_t *ids32 = width == 4 ? ids_b.buf : NULL;
    int64_t *ids64 = width == 8 ? ids_b.buf : NULL;
    int32_t next = 0;
    Py_BEGIN_ALLOW_THREADS
    memset(slot_id, 0xFF, size * sizeof(int32_t));   /* -1: empty */
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + AHEAD < n) {
            const uint64_t ahead = slot_of(keys[i + AHEAD], bits);
            __builtin_prefetch(slot_id + ahead);
            __builtin_prefetch(slot_key + ahead);
        }
        const uint64_t key = keys[i];
        uint64_t s = slot_of(key, bits);
        while (slot_id[s] >= 0 && slot_key[s] != key)
            s = (s + 1) & mask;
        if (slot_id[s] < 0) {
            slot_id[s] = next++;
            slot_key[s] = key;
        }
        if (ids32)
            ids32[i] = slot_id[s];
        else
            ids64[i] = slot_id[s];
    }
    Py_END_ALLOW_THREADS
    free(slot_key);
    free(slot_id);
    result = PyLong_FromLong(next);
done:
    PyBuffer_Release(&keys_b);
    PyBuffer_Release(&ids_b);
    return result;
}

static PyMethodDef methods[] = {
    {"first_appearance_ids", first_appearance_ids, METH_VARARGS, first_appearance_ids_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hashids", "Dense ids of hash keys (see columnar/ids.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hashids(void) { return PyModule_Create(&module); }
