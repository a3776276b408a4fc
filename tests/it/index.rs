//! A local package index for the tests: PEP 503 pages over real HTTP on 127.0.0.1, serving
//! wheels built here (one module each), optionally behind basic authentication.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Builds wheels into index folders, then serves them.
#[derive(Default)]
pub(crate) struct IndexBuilder {
    wheels: Vec<(String, String, String, String)>,
    files: Vec<(String, String, std::path::PathBuf)>,
    auth: Option<(String, String)>,
}

/// A running index; stopped when dropped.
pub(crate) struct PackageIndex {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

const SERVER: &str = r#"
import http.server, sys
root, port, want = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def do_GET(self):
        if want and self.headers.get('Authorization') != want:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="idx"')
            self.end_headers()
            return
        super().do_GET()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()
"#;

/// argv: out, index folder, project name, version, module text.
const BUILD_WHEEL: &str = r#"
import base64, hashlib, os, sys, zipfile
out, folder, project, ver, body = sys.argv[1:6]
name = project.replace('-', '_')
files = {
    f'{name}/__init__.py': body.encode(),
    f'{name}-{ver}.dist-info/METADATA': f'Metadata-Version: 2.1\nName: {project}\nVersion: {ver}\n'.encode(),
    f'{name}-{ver}.dist-info/WHEEL': b'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
}
record = ''
for path, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
    record += f'{path},sha256={digest},{len(data)}\n'
record += f'{name}-{ver}.dist-info/RECORD,,\n'
files[f'{name}-{ver}.dist-info/RECORD'] = record.encode()
index = os.path.join(out, folder)
d = os.path.join(index, project)
os.makedirs(d, exist_ok=True)
whl = f'{name}-{ver}-py3-none-any.whl'
with zipfile.ZipFile(os.path.join(d, whl), 'w') as z:
    for path, data in files.items():
        z.writestr(path, data)
"#;

impl IndexBuilder {
    /// A wheel of `project` at `version` (local labels allowed: `1.0+cu118`) in the index at
    /// `/<folder>/`, whose module `project` (dashes as underscores) holds `body`.
    pub(crate) fn wheel(mut self, folder: &str, project: &str, version: &str, body: &str) -> Self {
        self.wheels
            .push((folder.into(), project.into(), version.into(), body.into()));
        self
    }

    /// A distribution file made elsewhere (e.g. by `pip download`), served as `project`'s.
    pub(crate) fn file(mut self, folder: &str, project: &str, path: &std::path::Path) -> Self {
        self.files
            .push((folder.into(), project.into(), path.to_path_buf()));
        self
    }

    /// Every request must carry these basic-auth credentials (else 401).
    pub(crate) fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.into(), password.into()));
        self
    }

    pub(crate) fn start(self) -> PackageIndex {
        let dir = tempfile::tempdir().unwrap();
        for (folder, project, version, body) in &self.wheels {
            let built = Command::new("python3")
                .args(["-c", BUILD_WHEEL])
                .arg(dir.path())
                .args([folder, project, version, body])
                .status()
                .unwrap();
            assert!(built.success(), "building the wheel {project} {version}");
        }
        for (folder, project, path) in &self.files {
            let d = dir.path().join(folder).join(project);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(path, d.join(path.file_name().unwrap())).unwrap();
        }
        write_pages(dir.path());
        let auth = self.auth.map(|(u, p)| {
            use base64::Engine as _;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        PackageIndex::serve(dir, auth)
    }
}

impl PackageIndex {
    pub(crate) fn builder() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// Serves the files of `dir` as they are; with `authorization`, every request must carry
    /// exactly that `Authorization` header (else 401).
    pub(crate) fn serve(dir: tempfile::TempDir, authorization: Option<String>) -> PackageIndex {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(dir.path())
            .arg(port.to_string())
            .arg(authorization.unwrap_or_default())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the index did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PackageIndex {
            child,
            port,
            _dir: dir,
        }
    }
}

/// The PEP 503 pages: each index folder lists its projects, each project its files.
fn write_pages(root: &std::path::Path) {
    let names = |dir: &std::path::Path, dirs: bool| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir() == dirs && e.file_name() != "index.html")
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let page = |links: Vec<String>| format!("<html><body>{}</body></html>", links.concat());
    let mut folders = vec![root.to_path_buf()];
    while let Some(dir) = folders.pop() {
        let subdirs = names(&dir, true);
        let files = names(&dir, false);
        if !files.is_empty() {
            // A project folder: its distribution files.
            let links = files
                .iter()
                .map(|f| format!("<a href=\"{f}\">{f}</a>"))
                .collect();
            std::fs::write(dir.join("index.html"), page(links)).unwrap();
        } else if subdirs.iter().any(|d| names(&dir.join(d), true).is_empty()) {
            // An index folder: its projects.
            let links = subdirs
                .iter()
                .map(|p| format!("<a href=\"{p}/\">{p}</a>"))
                .collect();
            std::fs::write(dir.join("index.html"), page(links)).unwrap();
        }
        folders.extend(subdirs.iter().map(|d| dir.join(d)));
    }
}

impl PackageIndex {
    /// `http://127.0.0.1:<port>/<folder>/`.
    pub(crate) fn url(&self, folder: &str) -> String {
        format!("http://127.0.0.1:{}/{folder}/", self.port)
    }
}

impl Drop for PackageIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
