package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/voicebroker/voicebroker/internal/store"
	vbredis "github.com/voicebroker/voicebroker/internal/store/redis"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// BenchmarkLimitedPut is the mint's store step (the org's limit and the
// nonce in one script) from 32 goroutines against a real redis-server.
// Besides ns/op it reports the client's own CPU per call (user + system
// of this process) as cpu-µs/op, redis-server's as redis-cpu-µs/op, and
// the calls redis-server read at a time as calls/batch: what the store
// step costs each side, whatever else the machine runs.
func BenchmarkLimitedPut(b *testing.B) {
	for _, unbatched := range []bool{false, true} {
		name := "batched"
		if unbatched {
			name = "unbatched"
		}
		b.Run(name, func(b *testing.B) {
			addr := testenv.RedisAddr(b)
			s, err := vbredis.NewURL("redis://"+addr+"/0", &vbredis.Options{Timeout: time.Second, Unbatched: unbatched})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			limit := store.PerMinute(1 << 30)
			info := goredis.NewClient(&goredis.Options{Addr: addr})
			defer info.Close()
			reads0, rcpu0 := redisReads(b, info), redisCPU(b, info)
			b.SetParallelism(16) // 32 goroutines on 2 cores, as the harness's 32 connections
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var raw [16]byte
				for pb.Next() {
					rand.Read(raw[:])
					n := store.Nonce{Org: "bench", ID: base64.RawURLEncoding.EncodeToString(raw[:])}
					if _, err := s.PutNonce(context.Background(), n, time.Minute, &limit); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
			// redis-server reads one batch of commands at a time.
			b.ReportMetric(float64(b.N)/float64(redisReads(b, info)-reads0-1), "calls/batch")
			b.ReportMetric(float64(redisCPU(b, info)-rcpu0)/float64(time.Microsecond)/float64(b.N), "redis-cpu-µs/op")
		})
	}
}

// redisReads is redis-server's total_reads_processed.
func redisReads(b *testing.B, c *goredis.Client) int64 {
	s, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(s) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_reads_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no total_reads_processed in INFO stats")
	return 0
}

// redisCPU is redis-server's CPU time (used_cpu_user + used_cpu_sys).
func redisCPU(b *testing.B, c *goredis.Client) time.Duration {
	s, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(s) {
		for _, name := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), name); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
