package backend

import (
	"context"
	"errors"
)

// Versioned is a value with its version, as GetMany returns it. Version 0
// marks a key that does not exist or has expired (versions start at 1).
type Versioned struct {
	Value   []byte
	Version uint64
}

// Found reports whether the key existed.
func (v Versioned) Found() bool { return v.Version != 0 }

// BatchGetter is implemented by backends that read several keys in one
// round trip.
type BatchGetter interface {
	// GetMany returns one Versioned per key, in the order of keys (a key
	// given twice is returned twice). Missing keys have Version 0. Each
	// value is read atomically with its version; different keys may be read
	// at slightly different moments. Callers bound the number of keys.
	GetMany(ctx context.Context, keys []string) ([]Versioned, error)
}

// GetMany reads keys from b in one round trip when b implements
// BatchGetter, and with one Get per key otherwise.
func GetMany(ctx context.Context, b Backend, keys []string) ([]Versioned, error) {
	if bg, ok := b.(BatchGetter); ok {
		return bg.GetMany(ctx, keys)
	}
	return getEach(ctx, b, keys)
}

func getEach(ctx context.Context, b Backend, keys []string) ([]Versioned, error) {
	out := make([]Versioned, len(keys))
	for i, k := range keys {
		v, n, err := b.Get(ctx, k)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[i] = Versioned{Value: v, Version: n}
		}
	}
	return out, nil
}
