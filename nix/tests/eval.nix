# Evaluated by the tests without nixpkgs (`nix-instantiate --eval --strict --json`): the
# modules against a minimal `lib` and `pkgs` stub, and mkSandbox's wrapix.toml rendering.
let
  stubLib = rec {
    mkOption = o: o;
    mkEnableOption = d: {
      type = "bool";
      default = false;
      description = d;
    };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    types = {
      package = "package";
      str = "str";
      bool = "bool";
      listOf = t: "listOf ${t}";
      nullOr = t: "nullOr ${t}";
      enum = l: "enum ${builtins.concatStringsSep "," l}";
    };
    optionals = c: l: if c then l else [ ];
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    concatMap = f: l: builtins.concatLists (map f l);
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    removePrefix =
      p: s:
      if hasPrefix p s then
        builtins.substring (builtins.stringLength p) (builtins.stringLength s) s
      else
        s;
    escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] s}'";
    escapeShellArgs = l: builtins.concatStringsSep " " (map escapeShellArg l);
  };
  pkg = name: { outPath = "/nix/store/0000-${name}"; };
  stubPkgs = darwin: {
    stdenv.hostPlatform = {
      system = if darwin then "aarch64-darwin" else "x86_64-linux";
      isDarwin = darwin;
    };
    bubblewrap = pkg "bubblewrap";
    passt = pkg "passt";
    tmux = pkg "tmux";
    podman = pkg "podman";
    fuse-overlayfs = pkg "fuse-overlayfs";
    runCommand = name: _: script: { inherit name script; };
  };
  self = {
    packages = {
      x86_64-linux.default = pkg "wrapix";
      aarch64-darwin.default = pkg "wrapix";
    };
  };
  module =
    file: darwin: settings:
    import file self {
      config = settings;
      lib = stubLib;
      pkgs = stubPkgs darwin;
    };
  manager = module ../modules/manager.nix false {
    services.wrapix-manager = {
      enable = true;
      package = pkg "wrapix";
      listenAddress = "127.0.0.1:3000";
      stateDir = "/var/lib/wrapix-manager";
      allowedRoots = [ "/srv/projects" ];
      user = "wrapix";
    };
  };
  wrapix = module ../modules/wrapix.nix false {
    services.wrapix = {
      enable = true;
      package = pkg "wrapix";
      backends = [
        "bwrap"
        "podman"
      ];
      users = [ "ada" ];
    };
  };
  notifyd =
    darwin: listenTcp:
    module ../modules/notifyd.nix darwin {
      services.wrapix-notifyd = {
        enable = true;
        package = pkg "wrapix";
        inherit listenTcp;
      };
    };
  config = import ../config.nix;
in
{
  managerOptions = builtins.attrNames manager.options.services.wrapix-manager;
  managerService = manager.config.content.systemd.services.wrapix-manager.serviceConfig // {
    StateDirectory = manager.config.content.systemd.services.wrapix-manager.serviceConfig.StateDirectory.content;
  };
  wrapixOptions = builtins.attrNames wrapix.options.services.wrapix;
  wrapixPackages = map (p: p.outPath) wrapix.config.content.environment.systemPackages;
  wrapixSubuid = wrapix.config.content.users.users;
  notifydLinux = (notifyd false null).config.content.xdg.configFile."systemd/user/wrapix-notifyd.service".source.script;
  notifydDarwin =
    (notifyd true "192.168.64.1").config.content.home.file."Library/LaunchAgents/io.wrapix.notifyd.plist".source.script;
  notifydDarwinDefault = (notifyd true null).options.services.wrapix-notifyd.listenTcp.default;
  toml = config.render {
    profile = config.profiles.rust;
    deployKey = "myproject";
    packages = [
      "sqlx-cli"
      { pname = "ripgrep"; }
    ];
    env = {
      DATABASE_URL = "postgres://localhost/mydb";
      QUOTE = "say \"hi\"\n";
    };
    mounts = [
      {
        source = "~/.cargo/config.toml";
        dest = "~/.cargo/config.toml";
        mode = "ro";
      }
    ];
    mcp.tmux-debug = {
      audit = "/workspace/.debug-audit.log";
      auditFull = "/workspace/.debug-audit/";
    };
  };
  tomlEmpty = config.render { };
}
