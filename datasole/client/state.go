package client

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/patch"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// stateStore holds the client's copy of each live-state key.
type stateStore struct {
	mu        sync.Mutex
	keys      map[string]*stateValue
	resyncing map[string]bool
}

type stateValue struct {
	value   json.RawMessage // nil: no value
	version uint64
	subs    []*stateSub
}

type stateSub struct{ fn func(json.RawMessage, uint64) }

func (c *Client) handleState(f protocol.Frame) {
	st := &c.store
	switch f.Opcode {
	case protocol.StateSnapshot:
		var b protocol.StateSnapshotBody
		if json.Unmarshal(f.Payload, &b) != nil || b.Key == "" {
			return
		}
		data := b.Data
		if len(data) == 0 || (b.Version == 0 && string(data) == "null") {
			data = nil // deleted (a null value has a version)
		}
		st.mu.Lock()
		v := st.get(b.Key)
		delete(st.resyncing, b.Key)
		if b.Version != 0 && b.Version <= v.version && v.value != nil {
			st.mu.Unlock() // a repeat (or older copy) of what the client holds
			return
		}
		v.value, v.version = data, b.Version
		subs := v.subs
		st.mu.Unlock()
		notify(subs, data, b.Version)
	case protocol.StatePatch:
		var b protocol.StatePatchBody
		if json.Unmarshal(f.Payload, &b) != nil || b.Key == "" {
			return
		}
		st.mu.Lock()
		v := st.get(b.Key)
		if st.resyncing[b.Key] {
			st.mu.Unlock()
			return // a snapshot is on its way
		}
		if b.Version != 0 { // a versioned server: check that the patch fits
			base := b.Version - 1
			if b.Base != nil {
				base = *b.Base
			}
			if base != v.version {
				st.mu.Unlock()
				c.requestResync(b.Key)
				return
			}
		}
		next, err := patch.Apply(v.value, b.Patches)
		if err != nil {
			st.mu.Unlock()
			c.log.Debug("datasole client: patch rejected, resyncing", "key", b.Key, "err", err)
			c.requestResync(b.Key)
			return
		}
		v.value, v.version = next, b.Version
		subs := v.subs
		st.mu.Unlock()
		notify(subs, next, b.Version)
	}
}

func notify(subs []*stateSub, value json.RawMessage, version uint64) {
	for _, s := range subs {
		s.fn(value, version)
	}
}

// get returns the entry for key, creating it; st.mu is held.
func (st *stateStore) get(key string) *stateValue {
	if st.keys == nil {
		st.keys = make(map[string]*stateValue)
	}
	v := st.keys[key]
	if v == nil {
		v = &stateValue{}
		st.keys[key] = v
	}
	return v
}

// requestResync asks the server for a fresh snapshot of key with the
// $ds.resync extension (a v1 server answers "method not found"; the client
// then keeps applying patches as v1 clients do).
func (c *Client) requestResync(key string) {
	st := &c.store
	st.mu.Lock()
	if st.resyncing == nil {
		st.resyncing = make(map[string]bool)
	}
	if st.resyncing[key] {
		st.mu.Unlock()
		return
	}
	st.resyncing[key] = true
	st.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.CallRaw(ctx, "$ds.resync", map[string][]string{"keys": {key}})
		st.mu.Lock()
		if err != nil {
			delete(st.resyncing, key) // the next patch will try again
		}
		st.mu.Unlock()
	}()
}

// StateRaw returns the client's copy of a state key and its version.
func (c *Client) StateRaw(key string) (json.RawMessage, uint64, bool) {
	st := &c.store
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.keys[key]
	if v == nil || v.value == nil {
		return nil, 0, false
	}
	return append(json.RawMessage(nil), v.value...), v.version, true
}

// SubscribeStateRaw calls fn with the value of key now (if it has one) and
// after every change; value is nil when the key was deleted. fn runs on the
// client's read goroutine and must not block or keep value.
func (c *Client) SubscribeStateRaw(key string, fn func(value json.RawMessage, version uint64)) (off func()) {
	st := &c.store
	s := &stateSub{fn: fn}
	st.mu.Lock()
	v := st.get(key)
	v.subs = append(append([]*stateSub(nil), v.subs...), s)
	cur, ver := v.value, v.version
	st.mu.Unlock()
	if cur != nil {
		fn(cur, ver)
	}
	return func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		v := st.get(key)
		var next []*stateSub
		for _, x := range v.subs {
			if x != s {
				next = append(next, x)
			}
		}
		v.subs = next
	}
}
