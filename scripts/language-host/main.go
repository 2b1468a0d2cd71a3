// Command pulumi-language-python: a compact Python language runtime for the
// Pulumi engine, written for the canary toolchain because the upstream host
// module is not served by the module proxy this machine can reach.
//
// It implements the RPCs that `pulumi preview/up/destroy/refresh/stack/about/
// install` and Python policy packs use, on top of the SDK's own Python
// toolchain package (virtualenv, pip, poetry, uv handling) and the SDK's
// `pulumi-language-python-exec` script, which must sit next to this binary.
// Code generation RPCs (convert, import, package gen-sdk) are not provided.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

const execScriptName = "pulumi-language-python-exec"

// Exit code of the exec script after it printed an actionable message itself.
const exitAfterUserMessage = 32

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	executor := flag.String("use-executor", "", "path of the exec script (default: next to this binary)")
	tracing := flag.String("tracing", "", "tracing endpoint, passed on to the program")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	logging.InitLogging(false, 0, false)

	script := *executor
	if script == "" {
		self, err := os.Executable()
		if err != nil {
			fail("cannot locate own executable: %v", err)
		}
		script = filepath.Join(filepath.Dir(self), execScriptName)
		if _, err := os.Stat(script); err != nil {
			fail("missing executor %s: %v", script, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cancel := make(chan bool)
	go func() { <-ctx.Done(); close(cancel) }()

	h := &host{script: script, tracing: *tracing, shutdown: stop}
	h.runCtx, h.cancelRuns = context.WithCancel(context.Background())
	if args := flag.Args(); len(args) > 0 {
		h.engine = args[0]
		if err := rpcutil.Healthcheck(ctx, h.engine, 5*time.Minute, stop); err != nil {
			fail("engine health check: %v", err)
		}
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancel,
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, h)
			return nil
		},
		Options: rpcutil.TracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fail("cannot serve: %v", err)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail("server stopped: %v", err)
	}
}

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	script     string
	engine     string
	tracing    string
	runCtx     context.Context
	cancelRuns context.CancelFunc
	shutdown   context.CancelFunc // stops the server (engine gone)
}

// oneOf is the value of a runtime option named `name` among `names` (values in the same order; the
// SDK's option types are unexported, so the values give the type); unset (""), the SDK's default.
func oneOf[T any](option, name string, names []string, values ...T) (T, error) {
	var unset T
	if name == "" {
		return unset, nil
	}
	for i, known := range names {
		if known == name {
			return values[i], nil
		}
	}
	return unset, fmt.Errorf("unsupported %s option: %s", option, name)
}

// options turns Pulumi.yaml `runtime.options` into toolchain options.
func options(info *pulumirpc.ProgramInfo, isPlugin bool) (toolchain.PythonOptions, error) {
	o := toolchain.PythonOptions{Root: info.GetRootDirectory(), ProgramDir: info.GetProgramDirectory()}
	var raw map[string]any
	if info.GetOptions() != nil {
		raw = info.GetOptions().AsMap()
	}
	str := func(key string) (string, error) {
		v, ok := raw[key]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("runtime option %q must be a string", key)
		}
		return s, nil
	}
	var err error
	if o.Virtualenv, err = str("virtualenv"); err != nil {
		return o, err
	}
	tc, err := str("toolchain")
	if err != nil {
		return o, err
	}
	pip, poetry, uv := toolchain.Pip, toolchain.Poetry, toolchain.Uv
	if o.Toolchain, err = oneOf("toolchain", tc, []string{"pip", "poetry", "uv"}, pip, poetry, uv); err != nil {
		return o, err
	}
	checker, err := str("typechecker")
	if err != nil {
		return o, err
	}
	mypy, pyright := toolchain.TypeCheckerMypy, toolchain.TypeCheckerPyright
	if o.Typechecker, err = oneOf("typechecker", checker, []string{"mypy", "pyright"}, mypy, pyright); err != nil {
		return o, err
	}
	if isPlugin && o.Virtualenv == "" && (o.Toolchain == toolchain.Auto || o.Toolchain == toolchain.Pip) {
		o.Virtualenv = "venv"
	}
	return o, nil
}

func resolve(info *pulumirpc.ProgramInfo, isPlugin bool) (toolchain.PythonOptions, toolchain.Toolchain, error) {
	o, err := options(info, isPlugin)
	if err != nil {
		return o, nil, err
	}
	tc, err := toolchain.ResolveToolchain(o)
	return o, tc, err
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engine = req.GetEngineAddress()
	if h.engine != "" {
		if err := rpcutil.Healthcheck(context.Background(), h.engine, 5*time.Minute, h.shutdown); err != nil {
			return nil, fmt.Errorf("engine health check: %w", err)
		}
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancelRuns()
	return &emptypb.Empty{}, nil
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

// Python distributions that never come with a provider plugin.
var noPlugin = map[string]bool{"pulumi-policy": true, "pulumi-esc-sdk": true}

// Prints, for each distribution named on the command line, the path of the
// pulumi-plugin.json inside its top-level package ("" when there is none).
const findPluginJSON = `import importlib.metadata as md, importlib.util as iu, json, os, sys
out = {}
for name in sys.argv[1:]:
    path = ""
    try:
        mod = md.distribution(name).metadata["Name"].replace("-", "_")
        spec = iu.find_spec(mod)
        for loc in (list(spec.submodule_search_locations or []) if spec else []):
            cand = os.path.join(str(loc), "pulumi-plugin.json")
            if os.path.isfile(cand):
                path = cand
                break
    except Exception:
        pass
    out[name] = path
print(json.dumps(out))`

// GetRequiredPackages reports a resource plugin for every installed Python
// distribution that is a Pulumi package: one that ships a pulumi-plugin.json
// with "resource": true, or (without that file) whose name starts with
// "pulumi-". Whether the program imports it does not matter.
func (h *host) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	o, tc, err := resolve(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	if err := tc.EnsureVenv(ctx, req.GetInfo().GetProgramDirectory(), false, true, os.Stderr, os.Stderr); err != nil {
		return nil, err
	}
	found, err := cached(ctx, o, tc, packagesCache, false, func() (installedPackages, error) {
		return listInstalled(ctx, tc)
	})
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, d := range found.Dists {
		if noPlugin[d.Name] {
			continue
		}
		var meta *plugin.PulumiPluginJSON
		if p := found.PluginJSON[d.Name]; p != "" {
			if data, err := os.ReadFile(p); err == nil {
				meta = &plugin.PulumiPluginJSON{}
				if err := json.Unmarshal(data, meta); err != nil {
					return nil, fmt.Errorf("parsing %s: %w", p, err)
				}
			}
		}
		if meta == nil && !strings.HasPrefix(d.Name, "pulumi-") {
			continue
		}
		if dep := packageDependency(d, meta); dep != nil {
			resp.Packages = append(resp.Packages, dep)
		}
	}
	return resp, nil
}

// installedPackages is what GetRequiredPackages learns from Python: the venv's distributions
// and, for each, the path of the pulumi-plugin.json in its top-level package ("" if none).
type installedPackages struct {
	Dists      []plugin.DependencyInfo `json:"dists"`
	PluginJSON map[string]string       `json:"pluginJSON"`
	// The search for pulumi-plugin.json could not run: tolerated, as before, but not kept.
	searchFailed bool
}

func (p installedPackages) incomplete() bool { return p.searchFailed }

func listInstalled(ctx context.Context, tc toolchain.Toolchain) (installedPackages, error) {
	found := installedPackages{PluginJSON: map[string]string{}}
	dists, err := tc.ListPackages(ctx, true)
	if err != nil {
		return found, err
	}
	found.Dists = dists
	if len(dists) > 0 {
		args := []string{"-c", findPluginJSON}
		for _, d := range dists {
			args = append(args, d.Name)
		}
		found.searchFailed = true
		if cmd, err := tc.Command(ctx, args...); err == nil {
			if out, err := cmd.Output(); err == nil {
				if err := json.Unmarshal(out, &found.PluginJSON); err != nil {
					return found, fmt.Errorf("reading pulumi-plugin.json locations: %w", err)
				}
				found.searchFailed = false
			}
		}
	}
	return found, nil
}

func packageDependency(d plugin.DependencyInfo, meta *plugin.PulumiPluginJSON) *pulumirpc.PackageDependency {
	dep := &pulumirpc.PackageDependency{Kind: "resource"}
	if meta != nil {
		if !meta.Resource {
			return nil
		}
		dep.Name, dep.Version, dep.Server = meta.Name, meta.Version, meta.Server
		if p := meta.Parameterization; p != nil {
			dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
		}
		if p := meta.ExtensionParameterization; p != nil {
			dep.Extension = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
		}
	}
	if dep.Name == "" {
		dep.Name = strings.TrimPrefix(d.Name, "pulumi-")
	}
	if dep.Version == "" {
		v, err := pep440ToSemver(d.Version)
		if err != nil {
			logging.V(5).Infof("skipping %s %s: %v", d.Name, d.Version, err)
			return nil
		}
		dep.Version = v
	}
	if !strings.HasPrefix(dep.Version, "v") {
		dep.Version = "v" + dep.Version
	}
	return dep
}

// pep440ToSemver maps N(.N)*[{a|b|rc}N][.postN][.devN] to a semantic version:
// 1.2 -> 1.2.0, 1.2.3a4 -> 1.2.3-alpha.4, 1.2.3.post4.dev5 -> 1.2.3+post4dev5.
func pep440ToSemver(v string) (string, error) {
	if v == "" {
		return "", errors.New("empty version")
	}
	for _, r := range v {
		if r > unicode.MaxASCII {
			return "", errors.New("non-ascii version")
		}
	}
	digits := func(s string) (string, string) {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return s[:i], s[i:]
	}
	if n, rest := digits(v); n != "" && strings.HasPrefix(rest, "!") {
		return "", errors.New("epochs are not supported")
	}
	var parts []string
	rest := v
	for {
		n, r := digits(rest)
		if n == "" {
			break
		}
		parts = append(parts, n)
		rest = r
		// A dot followed by a number continues the release segment.
		if len(rest) > 1 && rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' {
			rest = rest[1:]
			continue
		}
		break
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("cannot parse %q", v)
	}
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	out := strings.Join(parts, ".")
	var n string
	switch {
	case strings.HasPrefix(rest, "rc"):
		n, rest = digits(rest[2:])
		out += "-rc." + n
	case strings.HasPrefix(rest, "a"):
		n, rest = digits(rest[1:])
		out += "-alpha." + n
	case strings.HasPrefix(rest, "b"):
		n, rest = digits(rest[1:])
		out += "-beta." + n
	}
	plus := false
	if strings.HasPrefix(rest, ".post") {
		n, rest = digits(rest[5:])
		out += "+post" + n
		plus = true
	}
	if strings.HasPrefix(rest, ".dev") {
		n, rest = digits(rest[4:])
		if !plus {
			out += "+"
		}
		out += "dev" + n
	}
	if rest != "" {
		return "", fmt.Errorf("cannot parse %q (left: %q)", v, rest)
	}
	return out, nil
}

func exitCode(err error) (int, bool) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.ExitStatus(), true
		}
	}
	return 0, false
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if h.engine == "" {
		return nil, errors.New("no engine address: Handshake must come before Run")
	}
	o, tc, err := resolve(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}

	var args []string
	flagArg := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engine)
	flagArg("project", req.GetProject())
	flagArg("root_directory", req.GetInfo().GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", req.GetPwd())
	flagArg("dry_run", strconv.FormatBool(req.GetDryRun()))
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("tracing", h.tracing)
	flagArg("organization", req.GetOrganization())
	args = append(append([]string{h.script}, args...), req.GetInfo().GetEntryPoint())
	args = append(args, req.GetArgs()...)

	var env []string
	if cfg := req.GetConfig(); cfg != nil {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		env = append(env, "PULUMI_CONFIG="+string(b))
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	b, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(b))

	if o.Typechecker != toolchain.TypeCheckerNone {
		name := "mypy"
		if o.Typechecker == toolchain.TypeCheckerPyright {
			name = "pyright"
		}
		tcArgs := []string{}
		if name == "mypy" {
			if venv, err := tc.VirtualEnvPath(ctx); err == nil && venv != "" {
				if rel, err := filepath.Rel(req.GetInfo().GetProgramDirectory(), venv); err == nil {
					tcArgs = append(tcArgs, "--exclude", rel)
				}
			}
		}
		tcArgs = append(tcArgs, req.GetInfo().GetProgramDirectory())
		check, err := tc.ModuleCommand(ctx, name, tcArgs...)
		if err != nil {
			return nil, err
		}
		check.Dir = req.GetInfo().GetProgramDirectory()
		out, err := check.CombinedOutput()
		os.Stdout.Write(out)
		if err != nil {
			return nil, fmt.Errorf("%s failed: %w\n%s", name, err, out)
		}
	}

	runCtx, cancel := context.WithCancel(h.runCtx)
	defer cancel()
	context.AfterFunc(ctx, cancel)
	cmd, err := tc.Command(runCtx, args...)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second

	if err := cmd.Run(); err != nil {
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		if code, ok := exitCode(err); ok {
			if code == exitAfterUserMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited with non-zero exit code: %d", code)}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	_, tc, err := resolve(req.GetInfo(), req.GetIsPlugin())
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.GetIsTerminal())
	if err != nil {
		return err
	}
	defer closer.Close()
	ctx := server.Context()
	dir := req.GetInfo().GetProgramDirectory()
	fmt.Fprint(stdout, "Installing dependencies...\n\n")
	if req.GetIsPlugin() {
		buildable, err := toolchain.IsBuildablePackage(dir)
		if err != nil {
			return err
		}
		if buildable {
			if err := tc.EnsureVenv(ctx, dir, req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
				return err
			}
			cmd, err := tc.ModuleCommand(ctx, "pip", "install", dir)
			if err != nil {
				return err
			}
			cmd.Stdout, cmd.Stderr = stdout, stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("installing package: %w", err)
			}
		}
	}
	if err := tc.InstallDependencies(ctx, dir, req.GetUseLanguageVersionTools(), true, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprint(stdout, "Finished installing dependencies\n\n")
	return closer.Close()
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	o := toolchain.PythonOptions{Toolchain: toolchain.Pip}
	if req.GetInfo() != nil {
		var err error
		if o, err = options(req.GetInfo(), false); err != nil {
			return nil, err
		}
	}
	tc, err := toolchain.ResolveToolchain(o)
	if err != nil {
		return nil, err
	}
	info, err := cached(ctx, o, tc, aboutCache, true, func() (toolchain.Info, error) { return tc.About(ctx) })
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: info.PythonExecutable,
		Version:    info.PythonVersion.String(),
		Metadata: map[string]string{
			"toolchain":        toolchain.Name(o.Toolchain),
			"toolchainVersion": info.ToolchainVersion.String(),
			"typechecker":      toolchain.TypeCheckerName(o.Typechecker),
		},
	}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	_, tc, err := resolve(req.GetInfo(), false)
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, fmt.Errorf("listing python packages: %w", err)
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, d := range deps {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return resp, nil
}

// RunPlugin runs a Python policy pack (`python -u -m pulumi.policy ARGS DIR`)
// or a plugin directory with a __main__.py (`python DIR ARGS`).
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	ctx := server.Context()
	analyzer := req.GetKind() == string(apitype.AnalyzerPlugin)
	o, tc, err := resolve(req.GetInfo(), !analyzer)
	if err != nil {
		return err
	}
	dir := req.GetInfo().GetProgramDirectory()
	var cmd *exec.Cmd
	if analyzer {
		args := append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...)
		cmd, err = tc.Command(ctx, append(args, dir)...)
		if err == nil {
			cmd.Dir = dir
		}
	} else {
		if _, statErr := os.Stat(filepath.Join(o.Root, "__main__.py")); statErr != nil {
			return fmt.Errorf("plugin in %s has no __main__.py (packaged Python plugins are not supported here)", o.Root)
		}
		cmd, err = tc.Command(ctx, append([]string{dir}, req.GetArgs()...)...)
		if err == nil {
			cmd.Dir = req.GetPwd()
		}
	}
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()

	var proxy *sdk.PolicyProxy
	if analyzer {
		if proxy, stdout, err = sdk.NewPolicyProxy(ctx, stdout); err != nil {
			return fmt.Errorf("starting policy pack proxy: %w", err)
		}
		cfg, err := proxy.AwaitConfiguration(ctx)
		if err != nil {
			return fmt.Errorf("reading stack configuration: %w", err)
		}
		if cfg != nil {
			add := func(k, v string) {
				if v != "" {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
			}
			if cmd.Env == nil {
				cmd.Env = os.Environ()
			}
			add("PULUMI_ORGANIZATION", cfg.Organization)
			add("PULUMI_PROJECT", cfg.Project)
			add("PULUMI_STACK", cfg.Stack)
			add("PULUMI_DRY_RUN", strconv.FormatBool(cfg.DryRun))
			if cfg.Config != nil {
				b, err := json.Marshal(cfg.Config)
				if err != nil {
					return err
				}
				add("PULUMI_CONFIG", string(b))
			}
		}
	}
	if len(req.GetEnv()) > 0 {
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, req.GetEnv()...)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting plugin: %w", err)
	}
	if proxy != nil {
		if err := proxy.Attach(ctx, cmd); err != nil {
			return fmt.Errorf("attaching policy pack proxy: %w", err)
		}
		return nil
	}
	if err := cmd.Wait(); err != nil {
		if code, ok := exitCode(err); ok {
			return server.Send(&pulumirpc.RunPluginResponse{
				Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}, //nolint:gosec
			})
		}
		return fmt.Errorf("plugin exited unexpectedly: %w", err)
	}
	return closer.Close()
}

// ---- answers kept per virtualenv ------------------------------------------------
// The engine asks for About and GetRequiredPackages on every preview and update, and each
// answer costs Python processes: `python --version`, `pip --version`, `pip list` and more,
// 0.4-0.7 s of an update on an idle machine. Both depend only on the virtualenv's
// interpreter and installed distributions, so they are saved in the venv (one file each,
// as two host processes ask at the same time) under a stamp of what changes with those.

const (
	aboutCache    = ".pulumi-language-python-about.json"
	packagesCache = ".pulumi-language-python-packages.json"
)

// An answer that says it is incomplete (a Python run failed and was tolerated) is not kept.
type partial interface{ incomplete() bool }

type savedAnswer[T any] struct {
	Stamp  string `json:"stamp"`
	Answer T      `json:"answer"`
}

// cached returns compute's answer, saved in the pip toolchain's venv under venvStamp.
// byPath: the answer also depends on the path the venv is reached by (About's executable).
func cached[T any](ctx context.Context, o toolchain.PythonOptions, tc toolchain.Toolchain, name string,
	byPath bool, compute func() (T, error),
) (T, error) {
	venv := ""
	if o.Toolchain == toolchain.Pip && o.Virtualenv != "" {
		venv, _ = tc.VirtualEnvPath(ctx)
	}
	stamp, err := venvStamp(venv)
	if err != nil || stamp == "" {
		logging.V(5).Infof("not caching %s: %v", name, err)
		return compute()
	}
	if byPath {
		stamp += " " + venv
	}
	path := filepath.Join(venv, name)
	var saved savedAnswer[T]
	if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &saved) == nil && saved.Stamp == stamp {
		return saved.Answer, nil
	}
	// The stamp is taken before computing: a package installed meanwhile changes the next stamp.
	answer, err := compute()
	if p, ok := any(answer).(partial); err != nil || (ok && p.incomplete()) {
		return answer, err
	}
	if data, err := json.Marshal(savedAnswer[T]{stamp, answer}); err == nil {
		tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
		if err := os.WriteFile(tmp, data, 0o644); err == nil { //nolint:gosec // no secret in it
			if err := os.Rename(tmp, path); err != nil {
				_ = os.Remove(tmp)
			}
		}
	}
	return answer, nil
}

// venvStamp sums up what changes when the venv's interpreter or distributions change: this
// host's own binary, pyvenv.cfg, the interpreter it runs, and each site-packages directory's
// entries and time (pip adds or removes a NAME-VERSION.dist-info directory for every install,
// upgrade or removal). "" (do not cache) for no venv, or a venv that also sees the system's
// site-packages, which change without it.
func venvStamp(venv string) (string, error) {
	if venv == "" {
		return "", nil
	}
	cfg, err := os.ReadFile(filepath.Join(venv, "pyvenv.cfg"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(cfg), "\n") {
		k, v, _ := strings.Cut(line, "=")
		if strings.TrimSpace(k) == "include-system-site-packages" && strings.TrimSpace(v) != "false" {
			return "", nil
		}
	}
	h := sha256.New()
	h.Write(cfg)
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	python, err := filepath.EvalSymlinks(filepath.Join(venv, "bin", "python"))
	if err != nil {
		return "", err
	}
	for _, f := range []string{self, python} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
	}
	dirs, err := filepath.Glob(filepath.Join(venv, "lib", "python*", "site-packages"))
	if err != nil || len(dirs) == 0 {
		return "", err
	}
	for _, dir := range dirs {
		st, err := os.Stat(dir)
		if err != nil {
			return "", err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", dir, st.ModTime().UnixNano())
		for _, e := range entries {
			fmt.Fprintf(h, "%s\n", e.Name())
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
