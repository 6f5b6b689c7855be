// Boost.Interprocess peer of `relshm peer-bench` (crates/relshm-cli/src/commands/peer_bench.rs):
// the same workloads in a managed_shared_memory segment whose containers link their nodes
// with offset_ptr (the self-relative strategy relshm calls Offset).
//
//   list_build / list_traverse   boost::interprocess::list<uint64_t>: push_back N, sum N
//   map_insert / map_find        boost::unordered_map<uint64_t, uint64_t> in the segment
//                                (a hash map, like relshm's Map): insert N, find N
//   treemap_insert / _find       boost::interprocess::map (red-black tree), for reference
//   mutex_lock_unlock            interprocess_mutex lock + increment + unlock
//   alloc_free_64                segment_manager allocate(64) + deallocate, in pairs
//   alloc_free_64_batch          allocate 1000 blocks of 64 bytes, then free them
//
// Output: one JSON line per measurement, {"impl":"boost","bench":...,"n":...,"ns_per_op":...},
// each the best of --reps repetitions. Usage: peer [--sizes 1000,100000] [--reps 5]
// [--lock-ops 1000000]

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/list.hpp>
#include <boost/interprocess/containers/map.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/unordered_map.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace bip = boost::interprocess;
using Segment = bip::managed_shared_memory;
using Manager = Segment::segment_manager;
template <class T> using Alloc = bip::allocator<T, Manager>;
using List = bip::list<std::uint64_t, Alloc<std::uint64_t>>;
using Pair = std::pair<const std::uint64_t, std::uint64_t>;
using HashMap = boost::unordered_map<std::uint64_t, std::uint64_t, boost::hash<std::uint64_t>,
                                     std::equal_to<std::uint64_t>, Alloc<Pair>>;
using TreeMap = bip::map<std::uint64_t, std::uint64_t, std::less<std::uint64_t>, Alloc<Pair>>;

namespace {

using Clock = std::chrono::steady_clock;

double since_ns(Clock::time_point t) {
    return std::chrono::duration<double, std::nano>(Clock::now() - t).count();
}

void emit(const char* bench, std::uint64_t n, double ns_per_op) {
    std::printf("{\"impl\":\"boost\",\"bench\":\"%s\",\"n\":%llu,\"ns_per_op\":%.3f}\n", bench,
                static_cast<unsigned long long>(n), ns_per_op);
}

// Removes the segment's name however the program ends (normal return or exception).
struct Remover {
    std::string name;
    explicit Remover(std::string n) : name(std::move(n)) { bip::shared_memory_object::remove(name.c_str()); }
    ~Remover() { bip::shared_memory_object::remove(name.c_str()); }
};

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "peer: %s\n", what.c_str());
    std::exit(1);
}

template <class Map>
void bench_map(Segment& seg, const char* insert_name, const char* find_name, std::uint64_t n,
               int reps) {
    double best_insert = std::numeric_limits<double>::infinity();
    double best_find = best_insert;
    for (int r = 0; r < reps; ++r) {
        Map* m = seg.construct<Map>(bip::anonymous_instance)(seg.get_segment_manager());
        auto t = Clock::now();
        for (std::uint64_t i = 0; i < n; ++i) m->emplace(i, i ^ 0x5555);
        best_insert = std::min(best_insert, since_ns(t));
        std::uint64_t hits = 0;
        t = Clock::now();
        for (std::uint64_t i = 0; i < n; ++i) {
            volatile std::uint64_t opaque = i;  // the compiler may not hoist the lookups
            const std::uint64_t key = opaque;
            hits += m->find(key) != m->end();
        }
        best_find = std::min(best_find, since_ns(t));
        if (hits != n) fail("map find missed keys");
        seg.destroy_ptr(m);
    }
    emit(insert_name, n, best_insert / n);
    emit(find_name, n, best_find / n);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::uint64_t> sizes{1000, 100000};
    int reps = 5;
    std::uint64_t lock_ops = 1000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--sizes")) {
            sizes.clear();
            for (char* p = argv[i + 1]; *p;) {
                sizes.push_back(std::strtoull(p, &p, 10));
                if (*p == ',') ++p;
            }
        } else if (!std::strcmp(argv[i], "--reps")) {
            reps = std::max(1, std::atoi(argv[i + 1]));
        } else if (!std::strcmp(argv[i], "--lock-ops")) {
            lock_ops = std::max<std::uint64_t>(1, std::strtoull(argv[i + 1], nullptr, 10));
        } else {
            fail(std::string("unknown option ") + argv[i]);
        }
    }
    std::uint64_t max_n = *std::max_element(sizes.begin(), sizes.end());
    Remover remover("relshm-boost-peer-" + std::to_string(getpid()));
    Segment seg(bip::create_only, remover.name.c_str(), (64u << 20) + max_n * 512);

    for (std::uint64_t n : sizes) {
        double best_build = std::numeric_limits<double>::infinity();
        double best_traverse = best_build;
        for (int r = 0; r < reps; ++r) {
            List* l = seg.construct<List>(bip::anonymous_instance)(seg.get_segment_manager());
            auto t = Clock::now();
            for (std::uint64_t i = 0; i < n; ++i) l->push_back(i);
            best_build = std::min(best_build, since_ns(t));
            t = Clock::now();
            std::uint64_t sum = 0;
            for (std::uint64_t v : *l) sum += v;
            best_traverse = std::min(best_traverse, since_ns(t));
            if (sum != n * (n - 1) / 2) fail("list traversal sum is wrong");
            seg.destroy_ptr(l);
        }
        emit("list_build", n, best_build / n);
        emit("list_traverse", n, best_traverse / n);
        bench_map<HashMap>(seg, "map_insert", "map_find", n, reps);
        bench_map<TreeMap>(seg, "treemap_insert", "treemap_find", n, reps);
    }

    auto* mtx = seg.construct<bip::interprocess_mutex>("mutex")();
    auto* counter = seg.construct<std::uint64_t>("counter")(0);
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < reps; ++r) {
        auto t = Clock::now();
        for (std::uint64_t i = 0; i < lock_ops; ++i) {
            mtx->lock();
            ++*counter;
            mtx->unlock();
        }
        best = std::min(best, since_ns(t));
    }
    emit("mutex_lock_unlock", lock_ops, best / lock_ops);

    best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < reps; ++r) {
        auto t = Clock::now();
        for (std::uint64_t i = 0; i < lock_ops; ++i) {
            void* p = seg.allocate(64);
            asm volatile("" : : "r"(p) : "memory");
            seg.deallocate(p);
        }
        best = std::min(best, since_ns(t));
    }
    emit("alloc_free_64", lock_ops, best / lock_ops);

    constexpr std::size_t batch = 1000;
    std::vector<void*> held(batch);
    best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < reps; ++r) {
        auto t = Clock::now();
        for (std::uint64_t done = 0; done < lock_ops; done += batch) {
            for (auto& p : held) p = seg.allocate(64);
            for (auto* p : held) seg.deallocate(p);
        }
        best = std::min(best, since_ns(t));
    }
    emit("alloc_free_64_batch", lock_ops, best / lock_ops);
    return 0;
}
