package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/left4me/left4me/node/a2s"
	"github.com/left4me/left4me/node/rcon"
)

type player struct {
	name   string
	joined time.Time
	id     int
	bot    bool
}

// game is the double's state.
type game struct {
	opts *options
	log  io.Writer

	mu         sync.Mutex
	cvars      map[string]string
	mapName    string
	players    []player
	nextID     int
	challenges map[string]int32
}

func (g *game) logf(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fmt.Fprintf(g.log, format+"\n", args...)
}

func run(ctx context.Context, args []string, root string, log io.Writer) error {
	opts, err := parseArgs(args)
	if err != nil {
		return err
	}
	cvars, execd, err := readConfig(root)
	if err != nil {
		return fmt.Errorf("server.cfg: %w", err)
	}
	for k, v := range opts.cvars {
		cvars[strings.ToLower(k)] = v
	}
	if cvars["hostname"] == "" {
		cvars["hostname"] = "Left 4 Dead 2"
	}
	g := &game{opts: opts, log: log, cvars: cvars, mapName: opts.mapName, nextID: 2, challenges: map[string]int32{}}
	addr := net.JoinHostPort(opts.ip, strconv.Itoa(opts.port))
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("bind game port: %w", err)
	}
	defer udp.Close()
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bind RCON port: %w", err)
	}
	defer tcp.Close()
	// srcds also binds a client port and (unless -nohltv) SourceTV; when not
	// told which, it steps up from the defaults until one is free.
	client, err := bindStepping(opts.ip, opts.clientPort, 27005)
	if err != nil {
		return fmt.Errorf("bind client port: %w", err)
	}
	defer client.Close()
	if !opts.noHLTV {
		tv, err := bindStepping(opts.ip, opts.tvPort, 27020)
		if err != nil {
			return fmt.Errorf("bind SourceTV port: %w", err)
		}
		defer tv.Close()
	}
	g.logf("srcds-double: %q on %s, map %s, mode %s, max players %d, configs %s", cvars["hostname"], addr, g.mapName, opts.mode, opts.maxPlayers, strings.Join(execd, ","))
	if cvars["rcon_password"] == "" {
		g.logf("srcds-double: no rcon_password: RCON refuses everyone")
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); g.serveQueries(udp) }()
	go func() { defer wg.Done(); g.serveRCON(ctx, tcp) }()
	<-ctx.Done()
	g.logf("srcds-double: shutting down")
	udp.Close()
	tcp.Close()
	wg.Wait()
	return nil
}

func bindStepping(ip string, port, from int) (net.PacketConn, error) {
	if port != 0 {
		return net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
	}
	var last error
	for p := from; p < from+32; p++ {
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

func (g *game) serveQueries(conn net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return
		}
		req, err := a2s.DecodeRequest(buf[:n])
		if err != nil {
			continue // srcds ignores what it does not understand
		}
		for _, pkt := range g.answer(req, from.String()) {
			conn.WriteTo(pkt, from)
		}
	}
}

// answer returns the datagrams for one query: a challenge first, the
// answer once the client echoes it.
func (g *game) answer(req a2s.Request, from string) [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	want, ok := g.challenges[from]
	if !ok || req.Challenge != want {
		c := randomInt32()
		g.challenges[from] = c
		return [][]byte{a2s.EncodeChallenge(c)}
	}
	switch req.Type {
	case a2s.TypeInfoRequest:
		return [][]byte{a2s.EncodeInfo(a2s.Info{
			Protocol: 17, Name: g.cvars["hostname"], Map: g.mapName, Folder: "left4dead2", Game: "Left 4 Dead 2",
			AppID: 550, Players: byte(len(g.players)), Bots: byte(g.bots()), MaxPlayers: byte(g.opts.maxPlayers), ServerType: 'd', Environment: 'l',
			Version: "2.2.4.3", Port: uint16(g.opts.port), Keywords: g.opts.mode, VAC: g.opts.vac(),
		})}
	case a2s.TypePlayerRequest:
		ps := make([]a2s.Player, len(g.players))
		for i, p := range g.players {
			ps[i] = a2s.Player{Index: byte(i), Name: p.name, Duration: float32(time.Since(p.joined).Seconds())}
		}
		return [][]byte{a2s.EncodePlayers(ps)}
	case a2s.TypeRulesRequest:
		return a2s.Split(a2s.EncodeRules(g.rules()), randomInt32())
	}
	return nil
}

// rules are the public cvars (never rcon_password), with the engine's usual
// set so the answer spans several packets like a real server's.
func (g *game) rules() []a2s.Rule {
	var rules []a2s.Rule
	for k, v := range g.cvars {
		if k != "rcon_password" && k != "sv_password" {
			rules = append(rules, a2s.Rule{Name: k, Value: v})
		}
	}
	for i := 0; i < 80; i++ {
		rules = append(rules, a2s.Rule{Name: fmt.Sprintf("sv_engine_default_%02d", i), Value: "0"})
	}
	rules = append(rules, a2s.Rule{Name: "mp_gamemode", Value: g.opts.mode}, a2s.Rule{Name: "sv_tickrate", Value: strconv.Itoa(g.opts.tickrate)})
	sort.Slice(rules, func(i, j int) bool { return rules[i].Name < rules[j].Name })
	return rules
}

func randomInt32() int32 {
	var b [4]byte
	rand.Read(b[:])
	c := int32(binary.LittleEndian.Uint32(b[:]))
	if c == -1 || c == 0 {
		c = 1
	}
	return c
}

func (g *game) serveRCON(ctx context.Context, l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			go func() { <-ctx.Done(); conn.Close() }()
			g.rconSession(conn)
		}()
	}
}

func (g *game) rconSession(conn net.Conn) {
	r := bufio.NewReader(conn)
	authed := false
	for {
		p, err := rcon.Read(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				g.logf("rcon %s: %v", conn.RemoteAddr(), err)
			}
			return
		}
		switch p.Type {
		case rcon.TypeAuth:
			g.mu.Lock()
			pw := g.cvars["rcon_password"]
			g.mu.Unlock()
			// srcds sends each packet on its own and clients written
			// against it read one packet per read: the empty reply and the
			// auth result must not arrive in one read, so the result goes
			// out a server frame later.
			rcon.Write(conn, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse})
			g.nextFrame()
			if pw != "" && p.Body == pw {
				authed = true
				rcon.Write(conn, rcon.Packet{ID: p.ID, Type: rcon.TypeAuthResponse})
				g.logf("rcon from %s: authenticated", conn.RemoteAddr())
			} else {
				authed = false
				rcon.Write(conn, rcon.Packet{ID: -1, Type: rcon.TypeAuthResponse})
				g.logf("rcon from %s: bad password", conn.RemoteAddr())
			}
		case rcon.TypeExecCommand:
			if !authed {
				return // srcds drops unauthenticated command connections
			}
			out := g.command(p.Body)
			for len(out) > rcon.MaxBody {
				rcon.Write(conn, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse, Body: out[:rcon.MaxBody]})
				out = out[rcon.MaxBody:]
			}
			rcon.Write(conn, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse, Body: out})
		case rcon.TypeResponse:
			// The mirror trick: echo it, then srcds' odd trailing packet.
			rcon.Write(conn, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse})
			rcon.Write(conn, rcon.Packet{ID: p.ID, Type: rcon.TypeResponse, Body: "\x00\x01\x00\x00"})
		}
	}
}

// nextFrame waits one server frame (1/tickrate), the pace at which srcds
// sends what it has to say.
func (g *game) nextFrame() {
	tick := g.opts.tickrate
	if tick <= 0 {
		tick = 30
	}
	time.Sleep(time.Second / time.Duration(tick))
}

// command runs one console command and returns what srcds would print.
func (g *game) command(line string) string {
	fields := splitCfg(line)
	if len(fields) == 0 {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	cmd, args := strings.ToLower(fields[0]), fields[1:]
	switch cmd {
	case "status":
		return g.status()
	case "hostname":
		if len(args) > 0 {
			g.cvars["hostname"] = strings.Join(args, " ")
			return ""
		}
		return fmt.Sprintf("\"hostname\" = \"%s\"\n", g.cvars["hostname"])
	case "echo":
		return strings.Join(args, " ") + "\n"
	case "changelevel", "map":
		if len(args) == 0 {
			return "Usage: changelevel <map>\n"
		}
		g.mapName = args[0]
		return ""
	case "l4m_join", "l4m_bot":
		// The name is the rest of the line as typed, quotes and all, so a
		// test can give a player any name.
		name := restOfLine(line)
		if name == "" || len(g.players) >= g.opts.maxPlayers {
			return cmd + ": server full or no name\n"
		}
		g.players = append(g.players, player{name: name, joined: time.Now(), id: g.nextID, bot: cmd == "l4m_bot"})
		g.nextID++
		fmt.Fprintf(g.log, "Player joined: %s\n", name)
		return ""
	case "l4m_leave":
		name := restOfLine(line)
		for i, p := range g.players {
			if p.name == name {
				g.players = append(g.players[:i], g.players[i+1:]...)
				fmt.Fprintf(g.log, "Player left: %s\n", name)
				return ""
			}
		}
		return fmt.Sprintf("l4m_leave: no player %q\n", name)
	case "cvarlist":
		var b strings.Builder
		for i := 0; i < 400; i++ {
			fmt.Fprintf(&b, "sv_engine_cvar_%03d                       : 0        : , \"sv\"      : engine default number %d\n", i, i)
		}
		fmt.Fprintf(&b, "--------------\n400 total convars/concommands\n")
		return b.String()
	}
	if v, ok := g.cvars[cmd]; ok {
		if len(args) > 0 {
			g.cvars[cmd] = strings.Join(args, " ")
			return ""
		}
		return fmt.Sprintf("\"%s\" = \"%s\"\n", cmd, v)
	}
	return fmt.Sprintf("Unknown command \"%s\"\n", cmd)
}

func (g *game) status() string {
	var b strings.Builder
	hib := "not hibernating"
	if len(g.players) == 0 {
		hib = "hibernating"
	}
	bots := g.bots()
	fmt.Fprintf(&b, "hostname: %s\n", g.cvars["hostname"])
	fmt.Fprintf(&b, "version : 2.2.4.3 8749 %s\n", g.opts.security())
	fmt.Fprintf(&b, "udp/ip  : %s:%d [ public n/a ]\n", g.opts.ip, g.opts.port)
	fmt.Fprintf(&b, "os      : Linux Dedicated\n")
	fmt.Fprintf(&b, "map     : %s\n", g.mapName)
	fmt.Fprintf(&b, "players : %d humans, %d bots (%d max) (%s) (unreserved)\n\n", len(g.players)-bots, bots, g.opts.maxPlayers, hib)
	fmt.Fprintf(&b, "# userid name uniqueid connected ping loss state rate adr\n")
	for i, p := range g.players {
		b.WriteString(statusLine(i+1, p, time.Since(p.joined)))
	}
	fmt.Fprintf(&b, "#end\n")
	return b.String()
}

// statusLine is one player's line of status as L4D2's srcds prints it:
// the user id padded, the slot, the name quoted but not escaped, and for a
// bot only "BOT active". Each human's ping differs (from the name), so a
// reader that pairs lines with players by position is caught.
func statusLine(slot int, p player, connected time.Duration) string {
	if p.bot {
		return fmt.Sprintf("#%3d \"%s\" BOT active\n", p.id, p.name)
	}
	h := fnv.New32a()
	h.Write([]byte(p.name))
	ping := 20 + h.Sum32()%100
	return fmt.Sprintf("#%3d %d \"%s\" STEAM_1:%d:%d %s %d 0 active 30000 127.0.0.1:%d\n",
		p.id, slot, p.name, p.id%2, 100000+p.id, formatSeconds(connected), ping, 27005+p.id)
}

// formatSeconds is the engine's COM_FormatSeconds: mm:ss, or h:mm:ss from
// an hour on.
func formatSeconds(d time.Duration) string {
	s := int(d.Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%02d:%02d", s/60, s%60)
}

// restOfLine is what follows a command's first word, as typed.
func restOfLine(line string) string {
	line = strings.TrimSpace(line)
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(line[i:])
}

// bots counts the bots among the players.
func (g *game) bots() int {
	n := 0
	for _, p := range g.players {
		if p.bot {
			n++
		}
	}
	return n
}
