// gloo.cc — the Gloo backend: collectives on CPU buffers over TCP.
//
// A thin C++17 shim with a C face (comm_gloo_create and the comm_ops
// below). Gloo reports every problem by throwing (gloo::IoException on
// timeouts and dead peers, gloo::EnforceNotMet on broken invariants), so
// each entry point runs its body under gloo_guard(), which turns any
// exception into false plus one line in the caller's errbuf. Nothing here
// may let an exception cross into C.
//
// All-reduce uses Gloo's persistent algorithm objects, which bind their
// buffers and transport slots when constructed: creating one per call
// costs several times the transfer of a small message. Each is bound to
// one staging buffer of max_floats floats; a call copies in, runs the
// cached plan for its (padded) count, and copies out. Plans are created
// lazily in call order, which is the same on every rank because every rank
// issues the same sequence of collectives; that keeps the transport slots
// they take from the context in step across ranks.
//
// Gloo has no abort call. comm_abort() sets a flag that comm.c checks before
// each call, and gloo_interrupt() ends an operation already blocked inside
// Gloo: it shuts down every pair's socket, so the transport sees the
// connection end and fails the pending sends and receives at once (instead
// of at the timeout, 20 s by default) -- see gloo_interrupt for how.
#include <gloo/algorithm.h>
#include <gloo/allgather.h>
#include <gloo/allreduce_bcube.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring.h>
#include <gloo/allreduce_ring_chunked.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/tcp/pair.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <signal.h>
#include <sys/socket.h>

#include "comm/comm_impl.h"

namespace {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// A failure detected by the shim itself; its message is already a sentence.
struct GlooShimError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- rendezvous ---------------------------------------------------------

// Gloo's rendezvous keys are "rank_<i>" (host names) and "<i>" (addresses):
// both name a rank, which lets a timeout say who is missing.
std::string gloo_describe_key(const std::string &key) {
    std::string digits = key.rfind("rank_", 0) == 0 ? key.substr(5) : key;
    bool is_rank = !digits.empty() && std::all_of(digits.begin(), digits.end(), [](unsigned char ch) {
        return std::isdigit(ch) != 0;
    });
    return is_rank ? "rank " + digits : "key \"" + key + "\"";
}

// gloo::rendezvous::Store over the C comm_store. The C store only answers
// "there or not yet", so get() and wait() poll with short, growing naps.
// The whole rendezvous shares one deadline (timeout_ms from construction):
// comm.h promises that bound for comm_gloo_create, not one per key.
class StoreAdapter final : public gloo::rendezvous::Store {
  public:
    StoreAdapter(const comm_store *store, std::string prefix, Millis timeout)
        : store_(store), prefix_(std::move(prefix)), timeout_(timeout), start_(Clock::now()),
          deadline_(start_ + timeout) {}

    void set(const std::string &key, const std::vector<char> &data) override {
        errbuf err = {};
        std::string full = prefix_ + key;
        if (!store_->set(store_->ctx, full.c_str(), data.data(), data.size(), &err))
            throw GlooShimError("store set of \"" + full + "\" failed: " + err.msg);
    }

    std::vector<char> get(const std::string &key) override {
        std::vector<char> value;
        poll(key, timeout_, &value);
        return value;
    }

    void wait(const std::vector<std::string> &keys) override { wait(keys, timeout_); }

    void wait(const std::vector<std::string> &keys, const Millis &timeout) override {
        for (const std::string &key : keys) poll(key, timeout, nullptr);
    }

  private:
    // True when found (value copied into *out unless out is null).
    bool try_get(const std::string &full, std::vector<char> *out) {
        errbuf err = {};
        void *data = nullptr;
        size_t len = 0;
        int found = store_->get(store_->ctx, full.c_str(), &data, &len, &err);
        if (found < 0) throw GlooShimError("store get of \"" + full + "\" failed: " + err.msg);
        if (found == 0) return false;
        std::unique_ptr<char, decltype(&free)> owned(static_cast<char *>(data), &free); // the store malloc'd it
        if (out) out->assign(owned.get(), owned.get() + len);
        return true;
    }

    // Polls every 2 ms at first, backing off to 20 ms: rendezvous usually
    // completes within milliseconds, but a late rank may take seconds.
    void poll(const std::string &key, Millis timeout, std::vector<char> *out) {
        const std::string full = prefix_ + key;
        const Clock::time_point deadline = std::min(deadline_, Clock::now() + timeout);
        Clock::duration nap = Millis(2);
        while (!try_get(full, out)) {
            Clock::time_point now = Clock::now();
            if (now >= deadline) {
                long waited = static_cast<long>(std::chrono::duration_cast<Millis>(now - start_).count());
                throw GlooShimError("timed out after " + std::to_string(waited) + " ms waiting for " +
                                    gloo_describe_key(key) + " (store key \"" + full +
                                    "\"); did every rank of the group start?");
            }
            std::this_thread::sleep_for(std::min(nap, deadline - now));
            nap = std::min<Clock::duration>(nap * 2, Millis(20));
        }
    }

    const comm_store *store_;
    const std::string prefix_;
    const Millis timeout_;
    const Clock::time_point start_, deadline_;
};

// ---- the communicator's state -------------------------------------------

using PlanKey = std::pair<comm_gloo_algorithm, size_t>; // (algorithm, padded count)

struct GlooComm {
    int rank = 0, size = 1;
    Millis timeout{0};
    // Members die in reverse order: the plans first (they hold transport
    // buffers on the context's pairs and point into staging), the device
    // (its event loop thread) last.
    std::shared_ptr<gloo::transport::Device> device;
    std::shared_ptr<gloo::rendezvous::Context> context;
    std::vector<float> staging; // (max_floats) every plan reduces in place here
    comm_gloo_algorithm algorithm = COMM_GLOO_AUTO;
    std::map<PlanKey, std::unique_ptr<gloo::Algorithm>> plans;
};

GlooComm &gloo_state(const comm *c) { return *static_cast<GlooComm *>(comm_backend_state(c)); }

// ---- errors -------------------------------------------------------------

// Gloo's messages start with "[/path/file.cc:123] " (or "[enforce fail at
// ...] "); a person needs the rest. Newlines would break the one-line rule.
void gloo_clean_message(const char *what, char *out, size_t out_len) {
    const char *text = what;
    const char *close = what[0] == '[' ? strstr(what, "] ") : nullptr;
    if (close && memchr(what, ':', static_cast<size_t>(close - what))) text = close + 2;
    snprintf(out, out_len, "%s", *text ? text : what);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

bool gloo_fail(errbuf *err, int rank, int size, const char *op, const char *what) {
    char clean[ERRBUF_LEN];
    gloo_clean_message(what, clean, sizeof clean);
    return errbuf_set(err, "gloo %s (rank %d of %d): %s", op, rank, size, clean);
}

// Runs body; any exception becomes false plus a message naming the operation.
template <typename Body>
bool gloo_guard(int rank, int size, const char *op, errbuf *err, Body &&body) noexcept {
    try {
        body();
        return true;
    } catch (const std::exception &e) {
        return gloo_fail(err, rank, size, op, e.what());
    } catch (...) {
        return gloo_fail(err, rank, size, op, "unknown C++ exception");
    }
}

// ---- connecting ---------------------------------------------------------

// Gloo writes to its sockets without MSG_NOSIGNAL, so a peer that closed
// its end would kill this whole process with SIGPIPE instead of failing one
// collective with EPIPE. Ignore SIGPIPE unless the program has its own
// handler (servers ignore it anyway; an ignored signal stays ignored).
void gloo_ignore_sigpipe() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction old = {};
        if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
    });
}

// Why prime: Gloo sets each socket's send buffer (SO_SNDBUF, which also
// turns off the kernel's autotuning) from the first message a persistent
// algorithm sends on it. When that message was small, a later one of a few
// KB no longer fits: it leaves in pieces smaller than a TCP segment, and
// each piece waits for the receiver's delayed ACK (40 ms on Linux). We
// measured 16 KB all-reduces taking 45-90 ms instead of 0.4 ms after a
// smaller one. One large message on every pair first sizes every send
// buffer generously, once.
void gloo_prime_pairs(GlooComm &g) {
    if (g.size == 1) return;
    constexpr size_t kPrimeBytes = size_t(1) << 20;
    const int slot = g.context->nextSlot();
    std::vector<char> out(kPrimeBytes), in(kPrimeBytes * static_cast<size_t>(g.size - 1));
    std::vector<std::unique_ptr<gloo::transport::Buffer>> sends, recvs;
    for (int peer = 0; peer < g.size; peer++) {
        if (peer == g.rank) continue;
        auto &pair = g.context->getPair(peer);
        sends.push_back(pair->createSendBuffer(slot, out.data(), kPrimeBytes));
        recvs.push_back(pair->createRecvBuffer(slot, in.data() + recvs.size() * kPrimeBytes, kPrimeBytes));
    }
    for (auto &b : sends) b->send();
    for (auto &b : recvs) b->waitRecv();
    for (auto &b : sends) b->waitSend();
}

std::unique_ptr<GlooComm> gloo_connect(const comm_options &opt, const comm_store &store) {
    gloo_ignore_sigpipe();
    auto g = std::make_unique<GlooComm>();
    g->rank = opt.rank;
    g->size = opt.size;
    g->timeout = Millis(opt.timeout_ms);
    g->staging.resize(opt.max_floats);
    gloo::transport::tcp::attr attr;
    attr.hostname = opt.hostname ? opt.hostname : "127.0.0.1";
    g->device = gloo::transport::tcp::CreateDevice(attr);
    g->context = std::make_shared<gloo::rendezvous::Context>(opt.rank, opt.size);
    // Pairs copy the context's timeout when connectFullMesh creates them,
    // and it bounds every wait of the persistent algorithms: set it first.
    g->context->setTimeout(g->timeout);
    StoreAdapter adapter(&store, opt.prefix ? opt.prefix : "", g->timeout);
    g->context->connectFullMesh(adapter, g->device);
    gloo_prime_pairs(*g);
    return g;
}

// ---- all-reduce plans ---------------------------------------------------

// Why pad: a server's all-reduce sizes follow its batch sizes, so one plan
// per exact count would grow without bound (each holds buffers as large as
// its count). Rounding up to 8 steps per power of two (256 floats at least)
// bounds the cache to about 8 plans per octave up to max_floats and costs at
// most 1/8 more traffic; the padding is zeros, so sums are unchanged.
size_t gloo_padded_count(size_t n, size_t max_floats) {
    size_t pow2 = 1;
    while (pow2 < n) pow2 <<= 1;
    size_t step = std::max<size_t>(256, pow2 / 8);
    size_t padded = (n + step - 1) / step * step;
    return std::min(padded, max_floats);
}

std::unique_ptr<gloo::Algorithm> gloo_plan_make(GlooComm &g, comm_gloo_algorithm a, size_t count) {
    std::vector<float *> ptrs{g.staging.data()};
    const int n = static_cast<int>(count); // count <= max_floats <= INT_MAX / 4
    switch (a) {
    case COMM_GLOO_RING:
        return std::make_unique<gloo::AllreduceRing<float>>(g.context, ptrs, n);
    case COMM_GLOO_RING_CHUNKED:
        return std::make_unique<gloo::AllreduceRingChunked<float>>(g.context, ptrs, n);
    case COMM_GLOO_BCUBE:
        return std::make_unique<gloo::AllreduceBcube<float>>(g.context, ptrs, n);
    case COMM_GLOO_HALVING_DOUBLING:
    case COMM_GLOO_AUTO:
        break;
    }
    return std::make_unique<gloo::AllreduceHalvingDoubling<float>>(g.context, ptrs, n);
}

gloo::Algorithm &gloo_plan_get(GlooComm &g, size_t count) {
    comm_gloo_algorithm a = g.algorithm == COMM_GLOO_AUTO ? comm_gloo_auto_algorithm(g.size) : g.algorithm;
    std::unique_ptr<gloo::Algorithm> &plan = g.plans[PlanKey(a, count)];
    if (!plan) plan = gloo_plan_make(g, a, count);
    return *plan;
}

void gloo_run_barrier(GlooComm &g) {
    gloo::BarrierOptions opts(g.context);
    opts.setTimeout(g.timeout);
    gloo::barrier(opts);
}

// ---- operations (C linkage: they sit in a C function table) -------------

extern "C" {

static bool gloo_allreduce_sum(comm *c, float *buf, size_t n, errbuf *err) {
    GlooComm &g = gloo_state(c);
    char op[64];
    snprintf(op, sizeof op, "allreduce of %zu floats", n);
    return gloo_guard(g.rank, g.size, op, err, [&] {
        size_t padded = gloo_padded_count(n, g.staging.size());
        gloo::Algorithm &plan = gloo_plan_get(g, padded);
        float *staging = g.staging.data();
        memcpy(staging, buf, n * sizeof *buf);
        std::fill(staging + n, staging + padded, 0.0f);
        plan.run();
        memcpy(buf, staging, n * sizeof *buf);
    });
}

static bool gloo_allgather(comm *c, const void *send, void *recv, size_t bytes, errbuf *err) {
    GlooComm &g = gloo_state(c);
    char op[64];
    snprintf(op, sizeof op, "allgather of %zu bytes per rank", bytes);
    return gloo_guard(g.rank, g.size, op, err, [&] {
        char *out = static_cast<char *>(recv);
        gloo::AllgatherOptions opts(g.context);
        // Without an input Gloo gathers in place (this rank's part already
        // sits at out + rank * bytes); Gloo only reads the input.
        if (send != out + static_cast<size_t>(g.rank) * bytes)
            opts.setInput<char>(static_cast<char *>(const_cast<void *>(send)), bytes);
        opts.setOutput<char>(out, bytes * static_cast<size_t>(g.size));
        opts.setTimeout(g.timeout);
        gloo::allgather(opts);
    });
}

static bool gloo_broadcast(comm *c, void *buf, size_t bytes, int root, errbuf *err) {
    GlooComm &g = gloo_state(c);
    char op[64];
    snprintf(op, sizeof op, "broadcast of %zu bytes from rank %d", bytes, root);
    return gloo_guard(g.rank, g.size, op, err, [&] {
        gloo::BroadcastOptions opts(g.context);
        opts.setOutput<char>(static_cast<char *>(buf), bytes); // in place on the root too
        opts.setRoot(root);
        opts.setTimeout(g.timeout);
        gloo::broadcast(opts);
    });
}

static bool gloo_barrier(comm *c, errbuf *err) {
    GlooComm &g = gloo_state(c);
    return gloo_guard(g.rank, g.size, "barrier", err, [&] { gloo_run_barrier(g); });
}

// Why a barrier before closing: Gloo fails every pending receive on a pair
// as soon as the peer's end closes, even one whose data has already
// arrived. A rank that closed right after the last collective could thus
// fail a slower peer's copy of it. Once every rank has reached this
// barrier, every earlier collective has completed everywhere. Its own
// outcome does not matter (a peer may close first and fail it), and a
// failed or aborted group skips it: its peers may be gone.
static void gloo_destroy(comm *c) {
    GlooComm *g = &gloo_state(c);
    if (comm_backend_healthy(c))
        gloo_guard(g->rank, g->size, "barrier before closing", nullptr, [&] { gloo_run_barrier(*g); });
    delete g;
}

} // extern "C"

// Gloo's TCP pair keeps its socket and the mutex that guards it protected.
// A pointer to a protected member, taken in a class derived from Pair, may
// be applied to any Pair (the access check is on naming the member, not on
// using the pointer): that is how the interrupt reaches them without a
// patched Gloo.
struct PairInternals : gloo::transport::tcp::Pair {
    static int fd(gloo::transport::tcp::Pair &p) { return p.*(&PairInternals::fd_); }
    static std::mutex &mu(gloo::transport::tcp::Pair &p) { return p.*(&PairInternals::m_); }
};

// shutdown(2), not close(2): the descriptor stays Gloo's, so nothing else can
// be given its number, and the device thread (or, in sync mode, the waiting
// thread itself) reads end-of-stream and fails every pending operation of
// the pair with an IoException -- the collective returns an error now. Under
// the pair's mutex: Pair::close() changes fd_ under it.
extern "C" void gloo_interrupt(comm *c) {
    GlooComm &g = gloo_state(c);
    for (int peer = 0; peer < g.size; peer++) {
        if (peer == g.rank) continue;
        auto *pair = dynamic_cast<gloo::transport::tcp::Pair *>(g.context->getPair(peer).get());
        if (!pair) continue; /* another transport: the timeout still bounds the wait */
        std::lock_guard<std::mutex> lock(PairInternals::mu(*pair));
        int fd = PairInternals::fd(*pair);
        if (fd >= 0) shutdown(fd, SHUT_RDWR);
    }
}

const comm_ops kGlooOps = {
    "gloo", gloo_allreduce_sum, gloo_allgather, gloo_broadcast, gloo_barrier, gloo_destroy, gloo_interrupt,
    nullptr, nullptr, // host buffers only: no enqueue on a device stream
};

const struct {
    comm_gloo_algorithm algorithm;
    const char *name;
} kGlooAlgorithmNames[] = {
    {COMM_GLOO_AUTO, "auto"},
    {COMM_GLOO_RING, "ring"},
    {COMM_GLOO_RING_CHUNKED, "ring-chunked"},
    {COMM_GLOO_HALVING_DOUBLING, "halving-doubling"},
    {COMM_GLOO_BCUBE, "bcube"},
};

} // namespace

// ---- the C face -----------------------------------------------------------

extern "C" comm *comm_gloo_create(const comm_options *opt, const comm_store *store, errbuf *err) {
    char why[200];
    if (!comm_options_valid(opt, store, why, sizeof why)) {
        errbuf_set(err, "gloo: %s", why);
        return nullptr;
    }
    const size_t max_floats = INT_MAX / sizeof(float); // Gloo keeps counts and byte sizes in int
    if (opt->max_floats == 0 || opt->max_floats > max_floats) {
        errbuf_set(err, "gloo: max_floats must be between 1 and %zu (Gloo sizes are int), got %zu", max_floats,
                   opt->max_floats);
        return nullptr;
    }
    char op[160];
    snprintf(op, sizeof op, "rendezvous with prefix \"%s\"", opt->prefix ? opt->prefix : "");
    std::unique_ptr<GlooComm> g;
    if (!gloo_guard(opt->rank, opt->size, op, err, [&] { g = gloo_connect(*opt, *store); })) return nullptr;
    comm *c = comm_backend_wrap(&kGlooOps, opt->rank, opt->size, opt->max_floats, g.get());
    if (!c) {
        errbuf_set(err, "gloo: out of memory creating the communicator");
        return nullptr;
    }
    g.release(); // owned by c now; gloo_destroy frees it
    return c;
}

extern "C" bool comm_gloo_algorithm_parse(const char *name, comm_gloo_algorithm *out) {
    for (const auto &entry : kGlooAlgorithmNames) {
        if (name && strcmp(name, entry.name) == 0) {
            *out = entry.algorithm;
            return true;
        }
    }
    return false;
}

// AUTO's choice. `facet bench comm --algorithm A` on loopback, 2 cores,
// best of 3 medians, µs at 4 KB / 64 KB / 1 MB / 4 MB:
//   T=2  ring 102/177/2590/7490      halving-doubling 227/374/2420/8130
//        bcube 200/360/2420/7370     ring-chunked 278/405/2460/8640
//   T=4  halving-doubling 422/719/6580/19220   bcube 582/672/7160/19340
//        ring-chunked 932/1231/8490/20300      (ring 490/1034/8970/23060)
// Ring passes whole buffers around, so each rank adds the terms in its own
// order: the same bits on every rank (comm.h) only for T <= 2, where
// a + b == b + a. Above 2, halving-doubling (each element reduced once,
// then copied out) won or tied at every size.
extern "C" comm_gloo_algorithm comm_gloo_auto_algorithm(int size) {
    return size <= 2 ? COMM_GLOO_RING : COMM_GLOO_HALVING_DOUBLING;
}

extern "C" const char *comm_gloo_algorithm_name(comm_gloo_algorithm a) {
    for (const auto &entry : kGlooAlgorithmNames)
        if (entry.algorithm == a) return entry.name;
    return "?";
}

extern "C" bool comm_gloo_set_algorithm(comm *c, comm_gloo_algorithm a, errbuf *err) {
    if (!c || strcmp(comm_backend_name(c), "gloo") != 0)
        return errbuf_set(err, "comm_gloo_set_algorithm: not a Gloo communicator");
    gloo_state(c).algorithm = a;
    return true;
}
