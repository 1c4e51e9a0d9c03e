package dsjwt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

const (
	jwksTimeout  = 10 * time.Second
	maxJWKSBytes = 1 << 20
)

// keySet caches the keys of one configured JWKS URL. It fetches on the
// request path (no background goroutine to stop), lets one fetch run at a
// time, and never fetches more often than minGap however many unknown kids
// arrive; a failed fetch keeps the previous keys.
type keySet struct {
	url    string
	client *http.Client
	ttl    time.Duration
	minGap time.Duration
	log    *slog.Logger

	mu       sync.Mutex
	keys     []jwk
	fetched  time.Time // last successful fetch
	tried    time.Time // last attempt
	inflight chan struct{}
}

type jwk struct {
	kid, alg string
	key      any
}

func newKeySet(o Options) *keySet {
	s := &keySet{url: o.JWKSURL, client: o.JWKSClient, ttl: o.JWKSRefresh, minGap: o.JWKSMinRefresh, log: o.Logger}
	if s.client == nil {
		s.client = &http.Client{Timeout: jwksTimeout}
	}
	if s.ttl <= 0 {
		s.ttl = DefaultJWKSRefresh
	}
	if s.minGap <= 0 {
		s.minGap = DefaultJWKSMinRefresh
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// keyfunc returns the keys that may have signed t: those with its kid (all
// keys when it has none) that fit its algorithm.
func (s *keySet) keyfunc(ctx context.Context, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	s.mu.Lock()
	stale := s.fetched.IsZero() || time.Since(s.fetched) >= s.ttl
	s.mu.Unlock()
	if stale {
		s.refresh(ctx)
	}
	keys, fetched := s.match(kid, t.Method)
	if fetched.IsZero() {
		return nil, ErrKeySetUnavailable
	}
	if len(keys) == 0 && kid != "" {
		// An unknown kid usually means the provider rotated its keys.
		s.refresh(ctx)
		keys, _ = s.match(kid, t.Method)
	}
	switch len(keys) {
	case 0:
		return nil, errUnknownKey
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

func (s *keySet) match(kid string, m jwt.SigningMethod) ([]jwt.VerificationKey, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []jwt.VerificationKey
	for _, k := range s.keys {
		if (kid == "" || k.kid == kid) && (k.alg == "" || k.alg == m.Alg()) && keyFits(m, k.key) {
			out = append(out, k.key)
		}
	}
	return out, s.fetched
}

// refresh fetches the key set unless a fetch is running (then it waits for
// that one) or the last attempt was less than minGap ago.
func (s *keySet) refresh(ctx context.Context) {
	s.mu.Lock()
	if ch := s.inflight; ch != nil {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	if !s.tried.IsZero() && time.Since(s.tried) < s.minGap {
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.inflight, s.tried = ch, time.Now()
	s.mu.Unlock()

	// The fetch serves every waiting request, so one caller giving up must
	// not cancel it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
	keys, err := s.fetch(fctx)
	cancel()

	s.mu.Lock()
	if err == nil {
		s.keys, s.fetched = keys, time.Now()
	}
	s.inflight = nil
	close(ch)
	s.mu.Unlock()
	if err != nil {
		s.log.WarnContext(ctx, "dsjwt: fetching JWKS failed", "url", s.url, "err", err)
	}
}

func (s *keySet) fetch(ctx context.Context) ([]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, errors.New("JWKS larger than 1 MiB")
	}
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	keys := make([]jwk, 0, len(set.Keys))
	for _, m := range set.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		// Private stays false: a JWKS only ever carries public keys to us,
		// and symmetric ("oct") keys are skipped.
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			s.log.DebugContext(ctx, "dsjwt: skipping JWK", "kid", m.KID, "err", err)
			continue
		}
		keys = append(keys, jwk{kid: m.KID, alg: m.ALG.String(), key: k.Key()})
	}
	return keys, nil
}
