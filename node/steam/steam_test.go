package steam

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A manifest as steamcmd leaves it after a finished install.
const finishedManifest = `"AppState"
{
	"appid"		"222860"
	"Universe"		"1"
	"name"		"Left 4 Dead 2 Dedicated Server"
	"StateFlags"		"4"
	"installdir"		"Left 4 Dead 2 Dedicated Server"
	"LastUpdated"		"1732633200"
	"SizeOnDisk"		"10737418240"
	"buildid"		"16385467"
	"BytesToDownload"		"9663676416"
	"BytesDownloaded"		"9663676416"
	"BytesToStage"		"10737418240"
	"BytesStaged"		"10737418240"
	"InstalledDepots"
	{
		"222861"
		{
			"manifest"		"5617042519224315862"
			"size"		"10737418240"
		}
	}
}
`

func TestInstalledBuild(t *testing.T) {
	for _, tc := range []struct {
		name, text, build string
		complete          bool
		err               string
	}{
		{name: "finished", text: finishedManifest, build: "16385467", complete: true},
		{name: "half downloaded", text: strings.Replace(strings.Replace(finishedManifest,
			`"BytesDownloaded"		"9663676416"`, `"BytesDownloaded"		"4831838208"`, 1),
			`"StateFlags"		"4"`, `"StateFlags"		"1026"`, 1), build: "16385467"},
		{name: "downloaded, not staged", text: strings.Replace(finishedManifest,
			`"BytesStaged"		"10737418240"`, `"BytesStaged"		"0"`, 1), build: "16385467"},
		{name: "update required", text: strings.Replace(finishedManifest,
			`"StateFlags"		"4"`, `"StateFlags"		"6"`, 1), build: "16385467"},
		{name: "no buildid", text: strings.Replace(finishedManifest, `"buildid"`, `"xbuildid"`, 1), err: `field "buildid" is missing`},
		{name: "buildid not a number", text: strings.Replace(finishedManifest, `"16385467"`, `"abc"`, 1), err: `field "buildid" is "abc", want a number`},
		{name: "no BytesStaged", text: strings.Replace(finishedManifest, `"BytesStaged"`, `"X"`, 1), err: `field "BytesStaged" is missing`},
		{name: "wrong root", text: `"AppInfo" { "buildid" "1" }`, err: `top-level key is "AppInfo"`},
		{name: "truncated", text: finishedManifest[:len(finishedManifest)-2], err: `block "AppState" (opened on line 2) is not closed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "appmanifest_222860.acf")
			os.WriteFile(path, []byte(tc.text), 0o644)
			build, complete, err := InstalledBuild(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil || build != tc.build || complete != tc.complete {
				t.Fatalf("InstalledBuild = %q, %v, %v; want %q, %v", build, complete, err, tc.build, tc.complete)
			}
		})
	}
	if _, _, err := InstalledBuild(filepath.Join(t.TempDir(), "missing.acf")); err == nil || !strings.Contains(err.Error(), "reading app manifest") {
		t.Fatalf("missing manifest: err = %v", err)
	}
}

// What steamcmd prints for +app_info_update 1 +app_info_print 222860.
const appInfoOutput = `Redirecting stderr to '/home/steam/Steam/logs/stderr.txt'
Loading Steam API...OK

Connecting anonymously to Steam Public...OK
Waiting for client config...OK
Waiting for user info...OK
AppID : 222860, change number : 26789012/0, last change : Tue Nov 26 15:00:00 2024
"222860"
{
	"common"
	{
		"name"		"Left 4 Dead 2 Dedicated Server"
		"type"		"Tool"
	}
	"depots"
	{
		"228990"
		{
			"depotfromapp"		"228980"
		}
		"222861"
		{
			"config"
			{
				"oslist"		"windows"
			}
			"manifests"
			{
				"public"
				{
					"gid"		"7069428123862000000"
					"size"		"3000000000"
					"download"		"1200000000"
				}
				"beta"
				{
					"gid"		"7069428123862000001"
					"size"		"3100000000"
					"download"		"1300000000"
				}
			}
		}
		"222862"
		{
			"manifests"
			{
				"public"
				{
					"gid"		"1232000000000000000"
					"size"		"6663676416"
					"download"		"2500000000"
				}
			}
		}
		"222863"
		{
			"manifests"
			{
				"public"		"5566000000000000000"
			}
		}
		"branches"
		{
			"public"
			{
				"buildid"		"16385467"
				"timeupdated"		"1732633200"
			}
			"beta"
			{
				"buildid"		"16400000"
				"timeupdated"		"1732700000"
			}
		}
	}
}
Unloading Steam API...OK
`

func TestRemoteBuild(t *testing.T) {
	for _, tc := range []struct{ name, out, branch, build, err string }{
		{name: "public", out: appInfoOutput, branch: "public", build: "16385467"},
		{name: "beta", out: appInfoOutput, branch: "beta", build: "16400000"},
		{name: "branch case", out: appInfoOutput, branch: "Public", build: "16385467"},
		{name: "unknown branch", out: appInfoOutput, branch: "nightly", err: "no depots/branches/nightly/buildid"},
		{name: "no block", out: "Loading Steam API...OK\nERROR! Not logged on.\n", branch: "public", err: "no app info block"},
		{name: "cut off", out: appInfoOutput[:strings.Index(appInfoOutput, `"timeupdated"`)], branch: "public", err: `line 67: block "public" (opened on line 65) is not closed`},
		{name: "bad build", out: strings.Replace(appInfoOutput, `"16385467"`, `"-1"`, 1), branch: "public", err: `buildid is "-1", want a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build, err := RemoteBuild(tc.out, tc.branch)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil || build != tc.build {
				t.Fatalf("RemoteBuild = %q, %v; want %q", build, err, tc.build)
			}
		})
	}
}

func TestRemoteSize(t *testing.T) {
	for _, tc := range []struct {
		name, out, branch string
		size              int64
		found             bool
		err               string
	}{
		// Depots of both platforms count; a shared depot (depotfromapp)
		// and a manifest of the old layout (only a gid) have no size.
		{name: "public", out: appInfoOutput, branch: "public", size: 9663676416, found: true},
		{name: "beta", out: appInfoOutput, branch: "beta", size: 3100000000, found: true},
		{name: "branch case", out: appInfoOutput, branch: "PUBLIC", size: 9663676416, found: true},
		{name: "no such branch", out: appInfoOutput, branch: "nightly"},
		{name: "no depots", out: "\"1\"\n{\n\"common\" {}\n}\n", branch: "public"},
		{name: "no block", out: "ERROR! Not logged on.\n", branch: "public", err: "no app info block"},
		{name: "negative", out: strings.Replace(appInfoOutput, `"6663676416"`, `"-5"`, 1), branch: "public", err: `depots/222862/manifests/public/size is "-5"`},
		{name: "not a number", out: strings.Replace(appInfoOutput, `"6663676416"`, `"6 GB"`, 1), branch: "public", err: `size is "6 GB"`},
		{name: "overflow", out: strings.Replace(appInfoOutput, `"6663676416"`, `"9223372036854775000"`, 1), branch: "public", err: "overflow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size, found, err := RemoteSize(tc.out, tc.branch)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil || size != tc.size || found != tc.found {
				t.Fatalf("RemoteSize = %d, %v, %v; want %d, %v", size, found, err, tc.size, tc.found)
			}
		})
	}
}

func TestParseKeyValuesErrors(t *testing.T) {
	for _, tc := range []struct{ text, err string }{
		{"", "line 1: expected a key, found end of input"},
		{"{", "line 1: expected a key, found '{'"},
		{"\"a\"\n}", `line 2: expected a value or '{' after key "a", found '}'`},
		{"\"a\" {\n\"b\" \"c\"\n{", `line 3: expected a key or '}' in block "a", found '{'`},
		{"\"a\" \"b\" \"c\"", `line 1: unexpected string "c" after the top-level block "a"`},
		{"\"a\" \"b", "line 1: quoted string is not closed"},
		{strings.Repeat(`"k" {`, 100), "nested deeper than 64"},
	} {
		if _, err := ParseKeyValues(tc.text); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseKeyValues(%q) err = %v, want %q", tc.text, err, tc.err)
		}
	}
}

func TestParseKeyValuesEscapesAndComments(t *testing.T) {
	n, err := ParseKeyValues("// generated\n\"a\"\n{\n\t\"q\"\t\"say \\\"hi\\\"\\n\" // trailing\n\tbare value\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := n.String("q"); v != "say \"hi\"\n" {
		t.Errorf("q = %q", v)
	}
	if v, _ := n.String("bare"); v != "value" {
		t.Errorf("bare = %q", v)
	}
	again, err := ParseKeyValues(Format(n))
	if err != nil || Format(again) != Format(n) {
		t.Fatalf("round trip: %v\n%s", err, Format(again))
	}
}

func TestFormatIsSteamLayout(t *testing.T) {
	n, err := ParseKeyValues(finishedManifest)
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(n); got != finishedManifest {
		t.Fatalf("Format differs from a real manifest:\n%s", got)
	}
}

// FuzzParseKeyValues: no input panics, and whatever parses survives a
// Format/parse round trip unchanged.
func FuzzParseKeyValues(f *testing.F) {
	f.Add(finishedManifest)
	f.Add(appInfoOutput[strings.Index(appInfoOutput, "\"222860\"\n"):])
	f.Add(`"a" { "b" "c\"" // x` + "\n}")
	f.Fuzz(func(t *testing.T, text string) {
		n, err := ParseKeyValues(text)
		if err != nil {
			return
		}
		out := Format(n)
		again, err := ParseKeyValues(out)
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, out)
		}
		if Format(again) != out {
			t.Fatalf("round trip changed:\n%s\n---\n%s", out, Format(again))
		}
		_, _ = RemoteBuild(text, "public")
	})
}

// FuzzAppInfo: no app_info_print output panics RemoteBuild or RemoteSize,
// and a size found is never negative.
func FuzzAppInfo(f *testing.F) {
	f.Add(appInfoOutput, "public")
	f.Add(strings.Replace(appInfoOutput, `"6663676416"`, `"9223372036854775000"`, 1), "public")
	f.Add("AppID : 1\n\"1\" { \"depots\" { \"2\" { \"manifests\" { \"b\" { \"size\" \"1\" } } } } }", "b")
	f.Fuzz(func(t *testing.T, out, branch string) {
		_, _ = RemoteBuild(out, branch)
		size, found, err := RemoteSize(out, branch)
		if err == nil && (size < 0 || (!found && size != 0)) {
			t.Fatalf("RemoteSize = %d, %v", size, found)
		}
	})
}
