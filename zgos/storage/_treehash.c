/* Native fast path for the storage Merkle trees: segment roots with the GIL released.
 *
 * The Keccak-256 used is XKCP's optimised sponge that safe-pysha3 already ships (its
 * extension exports `_PySHA3_KeccakWidth1600_Sponge`); `load(path)` binds it with dlopen, so
 * no second Keccak implementation lives in this repository. The tree rule is the one of
 * zgos/storage/merkle.py: leaf = keccak(256-byte sector), parent = keccak(left || right),
 * a full segment is a complete tree of 1024 leaves. The Python reference checks it in tests.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <string.h>

#define SECTOR 256
#define SECTORS_PER_SEGMENT 1024
#define SEGMENT (SECTOR * SECTORS_PER_SEGMENT)
#define HASH 32

typedef int (*sponge_fn)(unsigned int rate, unsigned int capacity, const unsigned char *input,
                         size_t input_len, unsigned char suffix, unsigned char *output, size_t output_len);
static sponge_fn sponge = NULL;

static inline void keccak256(const unsigned char *in, size_t len, unsigned char *out) {
    sponge(1088, 512, in, len, 0x01, out, HASH);
}

static void segment_root(const unsigned char *data, unsigned char *root) {
    unsigned char level[SECTORS_PER_SEGMENT * HASH];
    for (size_t j = 0; j < SECTORS_PER_SEGMENT; j++) keccak256(data + j * SECTOR, SECTOR, level + j * HASH);
    for (size_t width = SECTORS_PER_SEGMENT; width > 1; width /= 2)
        for (size_t k = 0; k < width / 2; k++) keccak256(level + 2 * k * HASH, 2 * HASH, level + k * HASH);
    memcpy(root, level, HASH);
}

static PyObject *load(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        PyErr_SetString(PyExc_OSError, dlerror());
        return NULL;
    }
    sponge = (sponge_fn)dlsym(handle, "_PySHA3_KeccakWidth1600_Sponge");
    if (sponge == NULL) {
        PyErr_SetString(PyExc_OSError, "_PySHA3_KeccakWidth1600_Sponge not found");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* segment_roots(data) -> bytes: 32-byte roots of the full 256 KiB segments of `data`. */
static PyObject *segment_roots(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (sponge == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call load() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    if (buf.len % SEGMENT != 0) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "data must be whole 256 KiB segments");
        return NULL;
    }
    size_t n = (size_t)buf.len / SEGMENT;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * HASH));
    if (out == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    unsigned char *roots = (unsigned char *)PyBytes_AS_STRING(out);
    const unsigned char *data = (const unsigned char *)buf.buf;
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++) segment_root(data + i * SEGMENT, roots + i * HASH);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return out;
}

static PyMethodDef methods[] = {
    {"load", load, METH_VARARGS, "Bind the Keccak sponge exported by safe-pysha3's extension."},
    {"segment_roots", segment_roots, METH_VARARGS, "Roots of the full 256 KiB segments of a buffer."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_treehash", NULL, -1, methods};

PyMODINIT_FUNC PyInit__treehash(void) { return PyModule_Create(&module); }
