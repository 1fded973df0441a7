//! The Dockerfile: health check, user, stop signal, the settings it sets, its stub build and the paths it copies.

use super::*;

#[test]
fn the_dockerfile_has_a_healthcheck_on_healthz_a_non_root_user_a_stop_signal_and_exposes_8080() {
    let instructions = dockerfile();
    let last = |name: &str| -> String {
        instructions
            .iter()
            .rev()
            .find(|(i, _)| i == name)
            .map(|(_, args)| args.clone())
            .unwrap_or_else(|| panic!("the Dockerfile has no {name}"))
    };

    let healthcheck = last("HEALTHCHECK");
    assert!(healthcheck.contains("/healthz"), "{healthcheck}");
    // Exec form, so that it needs no /bin/sh features; the port it falls back to is attrsync's.
    let command = healthcheck
        .split_once("CMD ")
        .map(|(_, c)| c.trim())
        .expect("HEALTHCHECK ... CMD [...]");
    let argv: Vec<String> = serde_json::from_str(command).expect("exec-form HEALTHCHECK CMD");
    let port = default_toml()["server"]["port"].as_integer().unwrap();
    assert!(
        argv.join(" ")
            .contains(&format!("${{ATTRSYNC_SERVER__PORT:-{port}}}")),
        "{argv:?}"
    );

    let user = last("USER");
    let name = user.split(':').next().unwrap_or_default().trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "USER {user}"
    );
    assert_eq!(last("STOPSIGNAL"), "SIGTERM");
    assert!(
        last("EXPOSE").split_whitespace().any(|p| p == "8080"),
        "EXPOSE {}",
        last("EXPOSE")
    );
    assert_eq!(last("WORKDIR"), "/app");
    assert_eq!(last("ENTRYPOINT"), r#"["attrsync"]"#);
    assert_eq!(last("CMD"), r#"["serve"]"#);
    assert!(
        last("FROM").starts_with("debian:bookworm-slim"),
        "{}",
        last("FROM")
    );
}

#[test]
fn every_environment_variable_the_dockerfile_sets_is_a_setting_attrsync_reads() {
    let env: Vec<String> = dockerfile()
        .into_iter()
        .filter(|(i, _)| i == "ENV")
        .flat_map(|(_, args)| {
            args.split_whitespace()
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(env.contains(&"ATTRSYNC_SERVER__HOST".to_owned()), "{env:?}");
    assert!(
        env.contains(&"ATTRSYNC_TELEMETRY__LOG_FORMAT".to_owned()),
        "{env:?}"
    );
    for name in &env {
        assert_is_a_setting(name, "the Dockerfile");
    }
}

#[test]
fn the_dockerfile_stub_build_covers_every_target_cargo_toml_declares() {
    // The dependency layer builds Cargo.toml with stub src/main.rs and src/lib.rs only: a build
    // script or an explicit [[test]]/[[bench]]/[[example]] path would not be there.
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    for kind in ["test", "bench", "example"] {
        assert!(
            manifest.get(kind).is_none(),
            "Cargo.toml declares [[{kind}]]: create its file in the Dockerfile's stub step too"
        );
    }
    assert!(
        manifest["package"].get("build").is_none(),
        "Cargo.toml has a build script: copy it before the Dockerfile's stub build"
    );
    let bins = manifest["bin"].as_array().expect("[[bin]]");
    for bin in bins {
        assert_eq!(bin["path"].as_str(), Some("src/main.rs"), "{bin:?}");
    }
    assert_eq!(manifest["lib"]["path"].as_str(), Some("src/lib.rs"));
}

#[test]
fn the_dockerfile_copies_the_manifest_of_every_workspace_member() {
    // cargo resolves the whole workspace even for `--bin attrsync`: a member whose manifest is
    // missing from the build stage fails the image build.
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("[workspace] members");
    let copied: Vec<String> = dockerfile()
        .into_iter()
        .filter(|(instruction, args)| instruction == "COPY" && !args.contains("--from="))
        .map(|(_, args)| args)
        .collect();
    for member in members {
        let member = member.as_str().expect("a member path");
        let wanted = format!("{member}/Cargo.toml");
        assert!(
            copied
                .iter()
                .any(|args| args.split_whitespace().any(|a| a == wanted)),
            "the Dockerfile does not copy {wanted}"
        );
        let stub = format!("{member}/src/main.rs");
        assert!(
            dockerfile()
                .iter()
                .any(|(i, args)| i == "RUN" && args.contains(&stub)),
            "the Dockerfile's stub step does not create {stub}"
        );
    }
}

#[test]
fn every_path_the_dockerfile_copies_and_compose_mounts_exists_in_the_repo() {
    let ignored = dockerignore();
    let mut copied = Vec::new();
    for (instruction, args) in dockerfile() {
        if instruction != "COPY" || args.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = args
            .split_whitespace()
            .filter(|a| !a.starts_with("--"))
            .collect();
        let (_destination, sources) = parts.split_last().expect("COPY <src>... <dest>");
        for source in sources {
            copied.push(source.to_string());
            assert!(
                repo().join(source).exists(),
                "the Dockerfile copies {source}, which is not in the repository"
            );
            let path = source.trim_end_matches('/');
            assert!(
                !ignored.iter().any(|p| path == p || path.starts_with(&format!("{p}/"))),
                "the Dockerfile copies {source}, which .dockerignore leaves out of the build context"
            );
        }
    }
    for needed in ["Cargo.toml", "Cargo.lock", "src/", "config/"] {
        assert!(copied.iter().any(|c| c == needed), "{copied:?}");
    }
    // Whatever the sources read at compile time (config/default.toml, say) must be copied into
    // the build stage, and so be in the build context.
    let under = |path: &str, dirs: &[String]| {
        dirs.iter().any(|d| {
            let d = d.trim_end_matches('/');
            path == d || path.starts_with(&format!("{d}/"))
        })
    };
    for file in rust_files(&repo().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests (conventionally the `#[cfg(test)]` module at the end) are not in the image.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (embedded, relative_to) in embedded_paths(text) {
            let base = match relative_to {
                Base::File => file.parent().unwrap().to_path_buf(),
                Base::Manifest => repo(),
            };
            let target = normalise(&base.join(&embedded));
            let relative = target.strip_prefix(repo()).unwrap_or(&target);
            let relative = relative.to_string_lossy();
            assert!(
                under(&relative, &copied),
                "{} reads {embedded} at compile time; the Dockerfile does not copy it",
                file.display()
            );
            assert!(
                !under(&relative, &ignored),
                "{} reads {embedded} at compile time; .dockerignore leaves it out",
                file.display()
            );
        }
    }

    let compose = compose();
    let mut mounted = 0;
    for service in &child(&compose, "services").children {
        let Some(volumes) = service.children.iter().find(|n| n.key == "volumes") else {
            continue;
        };
        for volume in &volumes.children {
            let spec = unquote(&volume.value);
            let host = spec.split(':').next().unwrap();
            if host.starts_with("./") || host.starts_with("../") {
                mounted += 1;
                assert!(
                    repo().join(host).exists(),
                    "service {} mounts {host}, which is not in the repository",
                    service.key
                );
            }
        }
    }
    assert!(
        mounted >= 4,
        "prometheus.yml, two provisioning folders and the dashboards"
    );
}
