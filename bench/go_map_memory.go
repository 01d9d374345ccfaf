// Measures the memory the old Go program's store takes per key: a
// map[uint64][]uint64 holding, per key, one uint64 count per node id.
//
//	go build -o go_map_memory bench/go_map_memory.go
//	./go_map_memory -keys 1000000 -slots 3
//
// Prints one JSON line. Heap figures come from runtime.MemStats after a forced
// GC; RSS figures from /proc/self/statm, once before and once after that GC.
package main

import (
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// rssBytes is the resident set size: the second field of /proc/self/statm, in pages.
func rssBytes() float64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	pages, err := strconv.ParseFloat(strings.Fields(string(data))[1], 64)
	if err != nil {
		panic(err)
	}
	return pages * float64(os.Getpagesize())
}

// splitmix64 is a bijection on uint64, so distinct inputs give distinct keys.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func main() {
	keys := flag.Int("keys", 1000000, "number of distinct keys to insert")
	slots := flag.Int("slots", 3, "counts per key (one per node id)")
	flag.Parse()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rssBefore := rssBytes()

	// Grow the map one key at a time, as keywords arrive in the old program.
	m := map[uint64][]uint64{}
	for i := 0; i < *keys; i++ {
		key := splitmix64(uint64(i))
		row := make([]uint64, *slots)
		m[key] = row
		for s := range row {
			row[s] = uint64(i + s)
		}
	}
	rssBeforeGC := rssBytes()

	runtime.GC()
	runtime.ReadMemStats(&after)
	rssAfterGC := rssBytes()
	runtime.KeepAlive(m)

	n := float64(*keys)
	out := map[string]any{
		"keys":                         *keys,
		"slots":                        *slots,
		"map_len":                      len(m),
		"go_version":                   runtime.Version(),
		"heap_alloc_bytes_per_key":     (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n,
		"heap_inuse_per_key":           (float64(after.HeapInuse) - float64(before.HeapInuse)) / n,
		"rss_growth_per_key_before_gc": (rssBeforeGC - rssBefore) / n,
		"rss_growth_per_key_after_gc":  (rssAfterGC - rssBefore) / n,
		"heap_sys_growth_per_key":      (float64(after.HeapSys) - float64(before.HeapSys)) / n,
		"total_alloc_bytes_per_key":    (float64(after.TotalAlloc) - float64(before.TotalAlloc)) / n,
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
