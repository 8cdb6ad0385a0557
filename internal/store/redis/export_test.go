package redis

import "github.com/redis/go-redis/v9"

// Client returns the store's go-redis client, for hooks in tests.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Queued returns how many commands wait in the pipeliner or are in flight.
func (s *Store) Queued() int {
	s.pipe.mu.Lock()
	defer s.pipe.mu.Unlock()
	return s.pipe.queued
}

// GetTimer and PutTimer are the pipeliner's timer pool.
var GetTimer, PutTimer = getTimer, putTimer
