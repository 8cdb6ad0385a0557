package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"syscall"
	"testing"
	"time"

	"github.com/voicebroker/voicebroker/internal/store"
	vbredis "github.com/voicebroker/voicebroker/internal/store/redis"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// BenchmarkLimitedPut is the mint's store step (the org's limit and the
// nonce in one script) from 32 goroutines against a real redis-server.
// Besides ns/op it reports the client's own CPU per call (user + system
// of this process, redis-server not included) as cpu-µs/op: what the
// store costs the broker, whatever else the machine runs.
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
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
