package a2s

import (
	"context"
	"fmt"
	"net"
	"time"
)

// maxChallenges bounds the handshake: a server that keeps answering with
// new challenges is broken, not slow.
const maxChallenges = 3

// query sends one request and follows challenges until the answer of the
// wanted type arrives, or ctx ends.
func query(ctx context.Context, addr string, reqType, respType byte) ([]byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("a2s %s: %w", addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	conn.SetDeadline(deadline)

	challenge := int32(-1)
	buf := make([]byte, 65535)
	for attempt := 0; attempt <= maxChallenges; attempt++ {
		if _, err := conn.Write(encodeRequest(reqType, challenge)); err != nil {
			return nil, fmt.Errorf("a2s %s: send: %w", addr, err)
		}
		var ra reassembler
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return nil, fmt.Errorf("a2s %s: no answer: %w", addr, err)
			}
			payload, done, err := ra.add(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("a2s %s: %w", addr, err)
			}
			if !done {
				continue
			}
			if len(payload) < 5 {
				return nil, fmt.Errorf("a2s %s: %w", addr, malformed("short answer"))
			}
			switch payload[4] {
			case TypeChallenge:
				r := &reader{b: payload[5:]}
				challenge = r.i32("challenge")
				if r.err != nil {
					return nil, fmt.Errorf("a2s %s: %w", addr, r.err)
				}
			case respType:
				return payload, nil
			default:
				return nil, fmt.Errorf("a2s %s: %w", addr, malformed("answer type %#x to request %#x", payload[4], reqType))
			}
			break
		}
	}
	return nil, fmt.Errorf("a2s %s: still challenged after %d answers", addr, maxChallenges)
}

// QueryInfo asks a server for A2S_INFO.
func QueryInfo(ctx context.Context, addr string) (*Info, error) {
	b, err := query(ctx, addr, TypeInfoRequest, TypeInfoResponse)
	if err != nil {
		return nil, err
	}
	return DecodeInfo(b)
}

// QueryPlayers asks a server for A2S_PLAYER.
func QueryPlayers(ctx context.Context, addr string) ([]Player, error) {
	b, err := query(ctx, addr, TypePlayerRequest, TypePlayerResp)
	if err != nil {
		return nil, err
	}
	return DecodePlayers(b)
}

// QueryRules asks a server for A2S_RULES.
func QueryRules(ctx context.Context, addr string) ([]Rule, error) {
	b, err := query(ctx, addr, TypeRulesRequest, TypeRulesResp)
	if err != nil {
		return nil, err
	}
	return DecodeRules(b)
}
