// Package logging builds the one logr.Logger a daemon passes down, backed by
// zap (the logger etcd uses too).
package logging

import (
	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at verbosity v (0: info; 1 and up: debug levels),
// writing JSON when json is set and console lines otherwise.
func New(v int, json bool) logr.Logger {
	cfg := zap.NewProductionConfig()
	if !json {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(zapcore.Level(-v))
	z, err := cfg.Build()
	if err != nil {
		return logr.Discard()
	}
	return zapr.NewLogger(z)
}
