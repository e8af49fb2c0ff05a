package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// options are the srcds arguments the double understands.
type options struct {
	game       string
	ip         string
	port       int
	clientPort int
	tvPort     int
	noHLTV     bool
	// insecure is srcds' -insecure: VAC off. Without it srcds is secure,
	// and both A2S_INFO's VAC byte and RCON status say so.
	insecure   bool
	mapName    string
	mode       string
	maxPlayers int
	tickrate   int
	// cvars set with +name value on the command line.
	cvars map[string]string
}

func parseArgs(args []string) (*options, error) {
	o := &options{ip: "0.0.0.0", port: 27015, mapName: "c1m1_hotel", mode: "coop", maxPlayers: 8, tickrate: 30, cvars: map[string]string{}}
	value := func(i int) (string, error) {
		if i+1 >= len(args) {
			return "", fmt.Errorf("%s needs a value", args[i])
		}
		return args[i+1], nil
	}
	number := func(i int) (int, error) {
		v, err := value(i)
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s %q: not a number", args[i], v)
		}
		return n, nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var err error
		switch a {
		case "-game":
			o.game, err = value(i)
		case "+ip":
			o.ip, err = value(i)
		case "+hostport", "-port":
			o.port, err = number(i)
		case "+clientport":
			o.clientPort, err = number(i)
		case "+tv_port":
			o.tvPort, err = number(i)
		case "+map":
			o.mapName, err = value(i)
		case "+mp_gamemode":
			o.mode, err = value(i)
		case "+maxplayers", "-maxplayers":
			o.maxPlayers, err = number(i)
		case "-tickrate":
			o.tickrate, err = number(i)
		case "-nohltv":
			o.noHLTV = true
			continue
		case "-insecure":
			o.insecure = true
			continue
		default:
			if strings.HasPrefix(a, "+") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "+") && !strings.HasPrefix(args[i+1], "-") {
				o.cvars[a[1:]] = args[i+1]
				i++
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		i++
	}
	if o.game != "left4dead2" {
		return nil, fmt.Errorf("-game left4dead2 is required (got %q)", o.game)
	}
	return o, nil
}

// readConfig reads cfg/server.cfg below the game folder, following exec
// lines to other files in cfg/ (the node execs each overlay's own config
// from there), and returns the cvars it sets, in order of appearance.
func readConfig(root string) (map[string]string, []string, error) {
	cvars := map[string]string{}
	var execd []string
	var load func(name string, depth int) error
	load = func(name string, depth int) error {
		if depth > 8 {
			return fmt.Errorf("exec nests deeper than 8 at %s", name)
		}
		if !strings.HasSuffix(name, ".cfg") {
			name += ".cfg"
		}
		if filepath.IsAbs(name) || strings.Contains(name, "..") {
			return fmt.Errorf("exec %q: outside cfg/", name)
		}
		f, err := os.Open(filepath.Join(root, "left4dead2", "cfg", name))
		if err != nil {
			return err
		}
		defer f.Close()
		execd = append(execd, name)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "//"); i >= 0 && strings.Count(line[:i], `"`)%2 == 0 {
				line = line[:i]
			}
			fields := splitCfg(line)
			if len(fields) == 0 {
				continue
			}
			if fields[0] == "exec" && len(fields) > 1 {
				if err := load(fields[1], depth+1); err != nil {
					return err
				}
				continue
			}
			val := ""
			if len(fields) > 1 {
				val = strings.Join(fields[1:], " ")
			}
			cvars[strings.ToLower(fields[0])] = val
		}
		return sc.Err()
	}
	err := load("server.cfg", 0)
	return cvars, execd, err
}

// splitCfg splits a config line into words, honouring double quotes.
func splitCfg(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, started := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQuote = !inQuote
			started = true
		case (r == ' ' || r == '\t') && !inQuote:
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if started {
		out = append(out, cur.String())
	}
	return out
}

// vac is A2S_INFO's VAC byte: 1 when secure, as srcds reports it.
func (o *options) vac() byte {
	if o.insecure {
		return 0
	}
	return 1
}

// security is the word RCON status prints after the version.
func (o *options) security() string {
	if o.insecure {
		return "insecure"
	}
	return "secure"
}
