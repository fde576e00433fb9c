/* Native fast path for the storage Merkle trees: segment roots with the GIL released.
 *
 * The tree rule is the one of zgos/storage/spec/merkle.py: leaf = keccak(256-byte sector),
 * parent = keccak(left || right), a full segment is a complete tree of 1024 leaves. The Python
 * reference checks every path here in tests.
 *
 * Hashing is the whole cost, and a tree level is many independent keccaks of equal length, so
 * they are computed several at a time: one SIMD lane per message (8 with AVX-512, 4 with AVX2,
 * chosen at run time). Without either, the single-message Keccak is XKCP's optimised sponge that
 * safe-pysha3 already ships (its extension exports `_PySHA3_KeccakWidth1600_Sponge`; `load(path)`
 * binds it with dlopen).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SECTOR 256
#define SECTORS_PER_SEGMENT 1024
#define SEGMENT (SECTOR * SECTORS_PER_SEGMENT)
#define HASH 32
#define RATE_LANES 17 /* keccak-256 absorbs 136 bytes per permutation */

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "lanes are loaded as little-endian words"
#endif

typedef int (*sponge_fn)(unsigned int rate, unsigned int capacity, const unsigned char *input,
                         size_t input_len, unsigned char suffix, unsigned char *output, size_t output_len);
static sponge_fn sponge = NULL;

static inline void keccak256(const unsigned char *in, size_t len, unsigned char *out) {
    sponge(1088, 512, in, len, 0x01, out, HASH);
}

/* Keccak-f[1600] (FIPS 202 §3.2): round constants, and rho offsets and pi lane order walked
 * along the pi cycle starting at lane 1. */
static const uint64_t ROUND_CONSTANTS[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};
static const int RHO[24] = {1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14, 27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44};
static const int PI[24] = {10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4, 15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1};

/* KECCAK_LANES(V, W, TARGET, NAME): `NAME(messages, count, len, out)` hashes `count` messages of
 * `len` bytes (len < 2 * 136, so one or two permutations) W at a time, message m's state being
 * element m of vector type V. A short last group repeats its first message and drops the extras. */
#define ROL(x, n) (((x) << (n)) | ((x) >> (64 - (n))))
#define KECCAK_LANES(V, W, TARGET, NAME)                                                          \
    __attribute__((target(TARGET))) static void NAME##_permute(V *a) {                           \
        V c[5], d, t, u;                                                                          \
        _Pragma("GCC unroll 24") for (int round = 0; round < 24; round++) {                      \
            _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20]; \
            _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) {                                \
                d = c[(x + 4) % 5] ^ ROL(c[(x + 1) % 5], 1);                                      \
                _Pragma("GCC unroll 5") for (int y = 0; y < 25; y += 5) a[y + x] ^= d;           \
            }                                                                                     \
            t = a[1];                                                                             \
            _Pragma("GCC unroll 24") for (int i = 0; i < 24; i++) {                              \
                u = a[PI[i]];                                                                     \
                a[PI[i]] = ROL(t, RHO[i]);                                                        \
                t = u;                                                                            \
            }                                                                                     \
            _Pragma("GCC unroll 5") for (int y = 0; y < 25; y += 5) {                            \
                _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) c[x] = a[y + x];             \
                _Pragma("GCC unroll 5") for (int x = 0; x < 5; x++) a[y + x] = c[x] ^ (~c[(x + 1) % 5] & c[(x + 2) % 5]); \
            }                                                                                     \
            a[0] ^= ROUND_CONSTANTS[round];                                                       \
        }                                                                                         \
    }                                                                                             \
    __attribute__((target(TARGET))) static void NAME(const unsigned char *const *messages, size_t count, \
                                                    size_t len, unsigned char *out) {            \
        for (size_t first = 0; first < count; first += W) {                                       \
            const unsigned char *group[W];                                                        \
            for (int m = 0; m < W; m++) group[m] = messages[first + m < count ? first + m : first]; \
            V a[25];                                                                              \
            memset(a, 0, sizeof a);                                                               \
            for (size_t block = 0; block * 8 * RATE_LANES <= len; block++) {                      \
                size_t start = block * 8 * RATE_LANES, end = len < start + 8 * RATE_LANES ? len : start + 8 * RATE_LANES; \
                for (size_t lane = 0; lane < (end - start) / 8; lane++)                           \
                    for (int m = 0; m < W; m++) {                                                 \
                        uint64_t word;                                                            \
                        memcpy(&word, group[m] + start + 8 * lane, 8);                            \
                        a[lane][m] ^= word;                                                       \
                    }                                                                             \
                if (end - start == 8 * RATE_LANES) {                                              \
                    NAME##_permute(a);                                                            \
                    continue;                                                                     \
                }                                                                                 \
                size_t pad = end - start; /* a whole number of lanes for every caller */         \
                a[pad / 8] ^= (V){} + 0x01;                                                       \
                a[RATE_LANES - 1] ^= (V){} + 0x8000000000000000ULL;                               \
                NAME##_permute(a);                                                                \
            }                                                                                     \
            for (int m = 0; m < W && first + m < count; m++)                                      \
                for (int lane = 0; lane < HASH / 8; lane++) {                                     \
                    uint64_t word = a[lane][m];                                                   \
                    memcpy(out + (first + m) * HASH + 8 * lane, &word, 8);                        \
                }                                                                                 \
        }                                                                                         \
    }

typedef uint64_t lanes8 __attribute__((vector_size(64)));
typedef uint64_t lanes4 __attribute__((vector_size(32)));
KECCAK_LANES(lanes8, 8, "avx512f", keccak_x8)
KECCAK_LANES(lanes4, 4, "avx2", keccak_x4)

typedef void (*many_fn)(const unsigned char *const *, size_t, size_t, unsigned char *);

static void keccak_x1(const unsigned char *const *messages, size_t count, size_t len, unsigned char *out) {
    for (size_t i = 0; i < count; i++) keccak256(messages[i], len, out + i * HASH);
}

static many_fn keccak_many = keccak_x1;

static void segment_root(const unsigned char *data, unsigned char *root) {
    unsigned char level[SECTORS_PER_SEGMENT * HASH];
    const unsigned char *messages[SECTORS_PER_SEGMENT];
    for (size_t j = 0; j < SECTORS_PER_SEGMENT; j++) messages[j] = data + j * SECTOR;
    keccak_many(messages, SECTORS_PER_SEGMENT, SECTOR, level);
    for (size_t width = SECTORS_PER_SEGMENT; width > 1; width /= 2) {
        /* parents are written over the first half of the level, after their group is read */
        for (size_t k = 0; k < width / 2; k++) messages[k] = level + 2 * k * HASH;
        keccak_many(messages, width / 2, 2 * HASH, level);
    }
    memcpy(root, level, HASH);
}

/* Segment proofs (zgos/storage/spec/segment.py validate_segment, 0G FileProof::validate). The
 * check here proves a full segment that is not the file's last and whose siblings are not rear
 * padding, the hot path of every download; it answers 1 only when every rule holds. 0 sends the
 * caller to the Python reference, which decides the other cases and names what is wrong. */
static uint64_t promote_split(uint64_t n) { /* leaves in the left subtree of n >= 2 */
    uint64_t width = 1;
    while (width < n) width <<= 1;
    return width / 2;
}

static int segment_proven(const unsigned char *data, const unsigned char *lemma, size_t items,
                          const unsigned char *path, size_t steps, uint64_t position, uint64_t n_leaves,
                          uint64_t n_data, const unsigned char *root) {
    if (items != steps + 2 || memcmp(lemma + (items - 1) * HASH, root, HASH) != 0) return 0;
    uint64_t lo = 0, n = n_leaves; /* from the root down: the position the path names */
    for (size_t k = steps; k-- > 0;) {
        if (n <= 1 || path[k] > 1) return 0;
        uint64_t left = promote_split(n);
        if (path[k]) {
            if (lo + left >= n_data) return 0; /* the sibling is rear padding only */
            n = left;
        } else {
            lo += left;
            n -= left;
        }
    }
    if (n != 1 || lo != position) return 0;
    unsigned char node[HASH], pair[2 * HASH];
    segment_root(data, node);
    if (memcmp(node, lemma, HASH) != 0) return 0;
    for (size_t k = 0; k < steps; k++) { /* fold the siblings bottom-up */
        const unsigned char *sibling = lemma + (k + 1) * HASH;
        memcpy(pair + (path[k] ? 0 : HASH), node, HASH);
        memcpy(pair + (path[k] ? HASH : 0), sibling, HASH);
        keccak256(pair, 2 * HASH, node);
    }
    return memcmp(node, root, HASH) == 0;
}

/* Sealing (zgos/storage/spec/sealing.py): word w of a 4 KiB seal is XOR-ed with keccak of sealed
 * word w - 1 (the first with the seal's seed). Each seal is a sequential chain, but seals are
 * independent, so word w of every seal is hashed at once, one seal per SIMD lane. */
#define BYTES_PER_SEAL 4096
#define WORDS_PER_SEAL (BYTES_PER_SEAL / HASH)

static void seal_pieces(const unsigned char *data, const unsigned char *seeds, size_t n, unsigned char *out,
                        const unsigned char **words, unsigned char *masks) {
    memcpy(masks, seeds, n * HASH);
    for (size_t w = 0; w < WORDS_PER_SEAL; w++) {
        for (size_t i = 0; i < n; i++) {
            size_t at = i * BYTES_PER_SEAL + w * HASH;
            for (size_t b = 0; b < HASH; b++) out[at + b] = data[at + b] ^ masks[i * HASH + b];
            words[i] = out + at;
        }
        if (w + 1 < WORDS_PER_SEAL) keccak_many(words, n, HASH, masks);
    }
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
    __builtin_cpu_init();
    int lanes = __builtin_cpu_supports("avx512f") ? 8 : __builtin_cpu_supports("avx2") ? 4 : 1;
    keccak_many = lanes == 8 ? keccak_x8 : lanes == 4 ? keccak_x4 : keccak_x1;
    return PyLong_FromLong(lanes);
}

/* use_lanes(n): hash n messages at a time from now on (1, 4 or 8; tests compare them all);
 * ValueError if this CPU cannot. Returns n. */
static PyObject *use_lanes(PyObject *self, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    __builtin_cpu_init();
    if (n == 8 && __builtin_cpu_supports("avx512f")) keccak_many = keccak_x8;
    else if (n == 4 && __builtin_cpu_supports("avx2")) keccak_many = keccak_x4;
    else if (n == 1) keccak_many = keccak_x1;
    else {
        PyErr_Format(PyExc_ValueError, "this CPU cannot hash %d messages at a time", n);
        return NULL;
    }
    return PyLong_FromLong(n);
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

/* seal_many(data, seeds) -> bytes: data is n 4 KiB pieces, seeds their n 32-byte first masks. */
static PyObject *seal_many(PyObject *self, PyObject *args) {
    Py_buffer data, seeds;
    if (sponge == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call load() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*y*", &data, &seeds)) return NULL;
    size_t n = (size_t)data.len / BYTES_PER_SEAL;
    PyObject *out = NULL;
    const unsigned char **words = NULL;
    unsigned char *masks = NULL;
    if (data.len % BYTES_PER_SEAL != 0 || (size_t)seeds.len != n * HASH) {
        PyErr_SetString(PyExc_ValueError, "data must be whole 4 KiB pieces and seeds 32 bytes per piece");
        goto done;
    }
    words = PyMem_Malloc((n ? n : 1) * sizeof *words);
    masks = PyMem_Malloc((n ? n : 1) * HASH);
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)data.len);
    if (words == NULL || masks == NULL || out == NULL) {
        Py_CLEAR(out);
        PyErr_NoMemory();
        goto done;
    }
    unsigned char *sealed = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    seal_pieces(data.buf, seeds.buf, n, sealed, words, masks);
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(words);
    PyMem_Free(masks);
    PyBuffer_Release(&data);
    PyBuffer_Release(&seeds);
    return out;
}

/* Frames straight off a socket (zgos/storage/spec/frames.py, read by zgos/storage/framefetch.py):
 * each segment goes from the kernel into a buffer, is proven there and, for a download to a file,
 * written at its place in the file, all without the GIL, so a download's threads neither take
 * turns on the GIL nor copy a segment out to Python. Only the frames native code can prove are
 * taken this way; at the first other one the caller gets it back and goes on in Python, which
 * decides. */
#define FRAME_HEADER_BYTES 16 /* index u64, proof bytes u32, data bytes u32 (little-endian) */
#define MAX_PROOF_BUFFER 4096
#define MAX_RUN 1024 /* frames in one call: above any request's (64) */

enum read_result { READ_OK = 0, READ_FAILED = -1, READ_TIMEOUT = -2, READ_CLOSED = -3 };

static double monotonic_s(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Exactly `len` bytes from `fd` (blocking or not) by the monotonic `deadline`. */
static enum read_result read_exact(int fd, unsigned char *buf, size_t len, double deadline) {
    while (len > 0) {
        ssize_t got = recv(fd, buf, len, 0);
        if (got > 0) {
            buf += got;
            len -= (size_t)got;
        } else if (got == 0) {
            return READ_CLOSED;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            double left = deadline - monotonic_s();
            if (left <= 0) return READ_TIMEOUT;
            struct pollfd readable = {fd, POLLIN, 0};
            int wait_ms = left > 60.0 ? 60000 : (int)(left * 1000) + 1; /* polled again until the deadline */
            if (poll(&readable, 1, wait_ms) < 0 && errno != EINTR) return READ_FAILED;
        } else if (errno != EINTR) {
            return READ_FAILED;
        }
    }
    return READ_OK;
}

static int write_exact(int fd, const unsigned char *buf, size_t len, off_t offset) {
    while (len > 0) {
        ssize_t put = pwrite(fd, buf, len, offset);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return -1;
        buf += put;
        len -= (size_t)put;
        offset += put;
    }
    return 0;
}

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

enum run_status { RUN_DONE = 0, RUN_HEADER = 1, RUN_FRAME = 2, RUN_PAST_END = 3 };

struct run {
    int sock, out;
    uint64_t first, step, count, n_leaves, n_data;
    const unsigned char *root;
    unsigned char *buffer;  /* one segment: where frames are received to be written to `out` */
    unsigned char **slots;  /* without a file (out < 0): where frame k of the run is received */
    unsigned char header[FRAME_HEADER_BYTES], proof[MAX_PROOF_BUFFER];
    size_t max_proof, left, proof_len;
    double deadline;
    uint64_t done;
    enum read_result failure;
    int write_errno;
};

static enum run_status take(struct run *r, unsigned char *buf, size_t len) {
    if (len > r->left) return RUN_PAST_END;
    r->left -= len;
    r->failure = read_exact(r->sock, buf, len, r->deadline);
    return RUN_DONE;
}

/* Frames of segments first, first + step, ... until `count` are proven (and written to r->out if
 * it is a file), one is not native's to take (RUN_HEADER: its header is read, nothing more), or
 * one read whole is not proven here (RUN_FRAME: its proof in r->proof, its data in the buffer).
 * A failed read or write sets r->failure or r->write_errno and ends the run. */
static enum run_status receive_run(struct run *r) {
    for (; r->done < r->count; r->done++) {
        uint64_t index = r->first + r->done * r->step;
        unsigned char *data = r->out >= 0 ? r->buffer : r->slots[r->done];
        if (take(r, r->header, FRAME_HEADER_BYTES) != RUN_DONE) return RUN_PAST_END;
        if (r->failure != READ_OK) return RUN_DONE;
        uint32_t proof_len = le32(r->header + 8), data_len = le32(r->header + 12);
        if (le64(r->header) != index || data_len != SEGMENT || index + 1 >= r->n_data || proof_len < 2 ||
            proof_len > r->max_proof)
            return RUN_HEADER; /* absent, another's, malformed or the padded last segment: Python decides */
        r->proof_len = proof_len;
        if (take(r, r->proof, proof_len) != RUN_DONE) return RUN_PAST_END;
        if (r->failure != READ_OK) return RUN_DONE; /* never read on after a failed read */
        if (take(r, data, SEGMENT) != RUN_DONE) return RUN_PAST_END;
        if (r->failure != READ_OK) return RUN_DONE;
        size_t items = r->proof[0], steps = r->proof[1];
        if (proof_len != 2 + items * HASH + steps ||
            !segment_proven(data, r->proof + 2, items, r->proof + 2 + items * HASH, steps, index, r->n_leaves,
                            r->n_data, r->root))
            return RUN_FRAME;
        if (r->out >= 0 && write_exact(r->out, data, SEGMENT, (off_t)(index * SEGMENT)) != 0) {
            r->write_errno = errno;
            return RUN_DONE;
        }
    }
    return RUN_DONE;
}

/* receive_frames(sock, out, first, step, count, left, timeout_s, n_leaves, n_data, root,
 * max_proof, scratch) -> (done, left, status, header, proof, write_errno, segments): see
 * receive_run. `left` is what remains of the answer's body; `scratch` a writable segment, where
 * frames are received when `out` is a file; write_errno the errno of a failed write to `out` (0:
 * none). Without a file (`out` < 0) each frame is received straight into a new bytes object, and
 * `segments` holds the `done` proven ones; in both cases it ends with the data of a frame read
 * whole but not proven (RUN_FRAME). TimeoutError, ConnectionError or OSError when the socket
 * fails. */
static PyObject *receive_frames(PyObject *self, PyObject *args) {
    struct run r = {0};
    Py_buffer root, scratch;
    unsigned long long first, step, count, left, n_leaves, n_data, max_proof;
    double timeout_s;
    if (sponge == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call load() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "iiKKKKdKKy*Kw*", &r.sock, &r.out, &first, &step, &count, &left, &timeout_s,
                          &n_leaves, &n_data, &root, &max_proof, &scratch))
        return NULL;
    PyObject *result = NULL, *segments = NULL;
    if (root.len != HASH || count > MAX_RUN || scratch.len < SEGMENT || max_proof > MAX_PROOF_BUFFER) {
        PyErr_SetString(PyExc_ValueError, "root must be 32 bytes, count at most 1024, scratch a segment, "
                                          "max_proof at most 4096");
        goto done;
    }
    r.first = first, r.step = step, r.count = count, r.left = (size_t)left, r.n_leaves = n_leaves;
    r.n_data = n_data, r.root = root.buf, r.buffer = scratch.buf, r.max_proof = (size_t)max_proof;
    if ((segments = PyList_New(r.out >= 0 ? 0 : (Py_ssize_t)count)) == NULL) goto done;
    if (r.out < 0 && (r.slots = PyMem_Malloc((count ? count : 1) * sizeof *r.slots)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; r.out < 0 && k < (Py_ssize_t)count; k++) { /* never shared before they are filled */
        PyObject *bytes = PyBytes_FromStringAndSize(NULL, SEGMENT);
        if (bytes == NULL) goto done;
        PyList_SET_ITEM(segments, k, bytes);
        r.slots[k] = (unsigned char *)PyBytes_AS_STRING(bytes);
    }
    enum run_status status;
    Py_BEGIN_ALLOW_THREADS
    r.deadline = monotonic_s() + timeout_s;
    status = receive_run(&r);
    Py_END_ALLOW_THREADS
    if (r.failure == READ_TIMEOUT) PyErr_SetString(PyExc_TimeoutError, "the node did not send the frames in time");
    else if (r.failure == READ_CLOSED) PyErr_SetString(PyExc_ConnectionError, "the connection closed mid-frame");
    else if (r.failure == READ_FAILED) PyErr_SetFromErrno(PyExc_OSError);
    if (PyErr_Occurred()) goto done;
    Py_ssize_t kept = (Py_ssize_t)r.done + (status == RUN_FRAME);
    if (r.out < 0 && PyList_SetSlice(segments, kept, PY_SSIZE_T_MAX, NULL) != 0) goto done;
    if (r.out >= 0 && status == RUN_FRAME) {
        PyObject *unproven = PyBytes_FromStringAndSize((const char *)r.buffer, SEGMENT);
        if (unproven == NULL || PyList_Append(segments, unproven) != 0) {
            Py_XDECREF(unproven);
            goto done;
        }
        Py_DECREF(unproven);
    }
    result = Py_BuildValue("KKiy#y#iO", (unsigned long long)r.done, (unsigned long long)r.left, (int)status,
                           r.header, (Py_ssize_t)(status == RUN_HEADER || status == RUN_FRAME ? FRAME_HEADER_BYTES : 0),
                           r.proof, (Py_ssize_t)(status == RUN_FRAME ? r.proof_len : 0), r.write_errno, segments);
done:
    Py_XDECREF(segments);
    PyMem_Free(r.slots);
    PyBuffer_Release(&root);
    PyBuffer_Release(&scratch);
    return result;
}

/* proven_segment(data, lemma, path, position, n_leaves, n_data, root) -> bool: `lemma` is the
 * proof's lemma items joined, `path` one byte (0 or 1) per step. */
static PyObject *proven_segment(PyObject *self, PyObject *args) {
    Py_buffer data, lemma, path, root;
    unsigned long long position, n_leaves, n_data;
    if (sponge == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call load() first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*y*y*KKKy*", &data, &lemma, &path, &position, &n_leaves, &n_data, &root)) return NULL;
    int proven = 0;
    if (data.len == SEGMENT && lemma.len % HASH == 0 && root.len == HASH) {
        Py_BEGIN_ALLOW_THREADS
        proven = segment_proven(data.buf, lemma.buf, (size_t)lemma.len / HASH, path.buf, (size_t)path.len,
                                position, n_leaves, n_data, root.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&lemma);
    PyBuffer_Release(&path);
    PyBuffer_Release(&root);
    return PyBool_FromLong(proven);
}

static PyMethodDef methods[] = {
    {"load", load, METH_VARARGS, "Bind safe-pysha3's Keccak sponge; use the widest SIMD lanes this CPU has (returns how many)."},
    {"use_lanes", use_lanes, METH_VARARGS, "Hash 1, 4 or 8 messages at a time (ValueError if unsupported)."},
    {"seal_many", seal_many, METH_VARARGS, "Seal n 4 KiB pieces given their n 32-byte seeds."},
    {"segment_roots", segment_roots, METH_VARARGS, "Roots of the full 256 KiB segments of a buffer."},
    {"proven_segment", proven_segment, METH_VARARGS, "Whether a full segment's proof holds (False: ask the reference)."},
    {"receive_frames", receive_frames, METH_VARARGS, "Receive, prove and write frames off a socket until one is not native's."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_treehash", NULL, -1, methods};

PyMODINIT_FUNC PyInit__treehash(void) { return PyModule_Create(&module); }
