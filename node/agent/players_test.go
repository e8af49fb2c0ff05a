package agent

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/left4me/left4me/apis/left4me/v1alpha1"
	"github.com/left4me/left4me/node/a2s"
)

// fakeStatus is status as L4D2's srcds prints it: two humans (one whose
// name holds spaces and quotes), a bot, and the lines around them.
const fakeStatus = `hostname: Fake
version : 2.2.4.3 8749 secure
udp/ip  : 0.0.0.0:27015 [ public n/a ]
os      : Linux Dedicated
map     : c2m1_highway
players : 2 humans, 1 bots (8 max) (not hibernating) (unreserved)

# userid name uniqueid connected ping loss state rate adr
#  2 1 "Alice" STEAM_1:0:12345 05:12 48 0 active 30000 192.168.1.5:27005
#  3 2 "Bob "the" Builder" STEAM_1:1:999 1:02:03 112 3 spawning 30000 10.0.0.7:27005
#  4 "Coach" BOT active
#end
`

func TestParseStatus(t *testing.T) {
	alice := statusPlayer{userID: 2, name: "Alice", steamID: "STEAM_1:0:12345", connected: 5*time.Minute + 12*time.Second, ping: 48, state: "active"}
	for _, tc := range []struct {
		name, in string
		want     []statusPlayer
	}{
		{"real output", fakeStatus, []statusPlayer{
			alice,
			{userID: 3, name: `Bob "the" Builder`, steamID: "STEAM_1:1:999", connected: time.Hour + 2*time.Minute + 3*time.Second, ping: 112, loss: 3, state: "spawning"},
			{userID: 4, name: "Coach", steamID: "BOT", state: "active", bot: true},
		}},
		{"crlf and no slot", "# 2 \"Alice\" STEAM_1:0:12345 05:12 48 0 active 30000 192.168.1.5:27005\r\n", []statusPlayer{alice}},
		{"unicode and a name that looks like a bot line", "# 7 1 \"Zoë \" BOT active \"ü\" STEAM_1:0:5 00:01 20 0 active 30000 1.2.3.4:27005\n",
			[]statusPlayer{{userID: 7, name: `Zoë " BOT active "ü`, steamID: "STEAM_1:0:5", connected: time.Second, ping: 20, state: "active"}}},
		{"no address (a LAN listen server)", "# 2 1 \"Alice\" STEAM_1:0:12345 05:12 48 0 active 30000\n", []statusPlayer{alice}},
		{"invalid UTF-8 in a name", "# 2 1 \"A\xffB\" BOT active\n", []statusPlayer{{userID: 2, name: "A\uFFFDB", steamID: "BOT", state: "active", bot: true}}},
		{"malformed lines skipped", strings.Join([]string{
			"# userid name uniqueid connected ping loss state rate adr",
			"#end",
			`# x 1 "NotANumber" STEAM_1:0:1 00:01 20 0 active 30000 1.2.3.4:1`,
			`# 2 1 2 "ThreeNumbers" STEAM_1:0:1 00:01 20 0 active 30000 1.2.3.4:1`,
			`# 2 1 "Short" STEAM_1:0:1 00:01 20`,
			`# 2 1 "BadPing" STEAM_1:0:1 00:01 fast 0 active 30000 1.2.3.4:1`,
			`# 2 1 "BadTime" STEAM_1:0:1 5m 20 0 active 30000 1.2.3.4:1`,
			`# 2 1 "Unclosed STEAM_1:0:1 00:01 20 0 active 30000 1.2.3.4:1`,
			` 2 1 "NoHash" STEAM_1:0:1 00:01 20 0 active 30000 1.2.3.4:1`,
			"",
		}, "\n"), nil},
		{"a player past 64 KiB is not read", strings.Repeat("x", rconMaxOutput) + "\n# 2 1 \"Late\" BOT active\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseStatus(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestMergePlayers(t *testing.T) {
	lines := parseStatus(fakeStatus)
	// A2S lists Bob before Alice, and a second "Alice" status does not
	// show (yet): each line is used once, by name, not by position.
	listed := []a2s.Player{{Name: `Bob "the" Builder`, Score: 7, Duration: 3723.9}, {Name: "Alice", Score: 2, Duration: 312}, {Name: "Alice", Score: 1, Duration: 3}}
	got := mergePlayers(listed, lines)
	want := []v1.Player{
		{Name: `Bob "the" Builder`, Score: 7, DurationSeconds: 3723, UserID: 3, SteamID: "STEAM_1:1:999", Ping: 112, Loss: 3, State: "spawning"},
		{Name: "Alice", Score: 2, DurationSeconds: 312, UserID: 2, SteamID: "STEAM_1:0:12345", Ping: 48, State: "active"},
		{Name: "Alice", Score: 1, DurationSeconds: 3},
		{Name: "Coach", UserID: 4, SteamID: "BOT", State: "active", Bot: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if got := mergePlayers(nil, nil); got == nil {
		t.Fatal("no players is an empty list, not null")
	}
}

// fakeA2S answers A2S_INFO and A2S_PLAYER on UDP at addr (the port the
// RCON fake listens on, as srcds uses one port for both).
func fakeA2S(t *testing.T, addr string, info a2s.Info, players []a2s.Player) {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { conn.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := a2s.DecodeRequest(buf[:n])
			if err != nil {
				continue
			}
			switch req.Type {
			case a2s.TypeInfoRequest:
				conn.WriteTo(a2s.EncodeInfo(info), from)
			case a2s.TypePlayerRequest:
				conn.WriteTo(a2s.EncodePlayers(players), from)
			}
		}
	}()
}

func getPlayers(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func playersRoute(t *testing.T, a *Agent) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /players/{ns}/{name}", (&logServer{a: a}).servePlayers)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPlayersRoute(t *testing.T) {
	info := a2s.Info{Name: "Fake", Map: "c2m1_highway", MaxPlayers: 8, Players: 2, Bots: 1}
	listed := []a2s.Player{{Name: "Alice", Score: 2, Duration: 312.5}, {Name: `Bob "the" Builder`, Score: 7, Duration: 3723}}
	addr := fakeRCON(t, "s3cret-password-1")
	fakeA2S(t, addr, info, listed)
	url := playersRoute(t, rconAgent(t, addr))

	code, body := getPlayers(t, url+"/players/ns/up")
	var got v1.InstancePlayers
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("up: %d %s", code, body)
	}
	if got.Map != "c2m1_highway" || got.MaxPlayers != 8 || got.Warning != "" || len(got.Players) != 3 ||
		got.Players[0].SteamID != "STEAM_1:0:12345" || got.Players[0].Ping != 48 || got.Players[1].Ping != 112 || !got.Players[2].Bot {
		t.Fatalf("up: %+v", got)
	}
	// No client IP leaves the node, in any field.
	if strings.Contains(body, "192.168.1.5") || strings.Contains(body, "10.0.0.7") {
		t.Fatalf("the answer holds a player's address: %s", body)
	}
	// RCON refused (no password here): A2S's part, with a warning.
	code, body = getPlayers(t, url+"/players/ns/nopw")
	got = v1.InstancePlayers{}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || !strings.Contains(got.Warning, "RCON status failed") ||
		len(got.Players) != 2 || got.Players[0].Name != "Alice" || got.Players[0].SteamID != "" || got.Players[0].DurationSeconds != 312 {
		t.Fatalf("nopw: %d %s", code, body)
	}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/players/ns/absent", http.StatusNotFound},
		{"/players/ns/stopped", http.StatusConflict},
		{"/players/NS_/up", http.StatusBadRequest},
	} {
		if code, body := getPlayers(t, url+c.path); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.path, code, body, c.want)
		}
	}
}

// TestPlayersGameNotAnswering: a game that answers neither A2S nor RCON
// is a 502, within the A2S timeout, not a hang.
func TestPlayersGameNotAnswering(t *testing.T) {
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() }) // bound, silent
	url := playersRoute(t, rconAgent(t, l.LocalAddr().String()))
	began := time.Now()
	code, body := getPlayers(t, url+"/players/ns/up")
	if code != http.StatusBadGateway || !strings.Contains(body, "ns/up") || !strings.Contains(body, "did not answer") {
		t.Fatalf("silent game: %d %s", code, body)
	}
	if took := time.Since(began); took > a2sTimeout+playersRCONTimeout {
		t.Fatalf("the silent game took %v to refuse", took)
	}
}
