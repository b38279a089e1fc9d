//! A web app's template rendering a gallery of signed links through a
//! registered `media_url` function, called once per link.
//!
//! Run: `cargo run --example template`

use std::sync::Arc;

use mediagate::signer::time::Duration;
use mediagate::signer::{Key, Keyring, Signer};
use minijinja::{Environment, Error, ErrorKind, context};

const GALLERY: &str = r#"<h1>{{ user }}'s photos</h1>
<ul>
{%- for photo in photos %}
  <li><img src="{{ media_url(photo) }}" alt="{{ photo }}"></li>
{%- endfor %}
</ul>
<a href="{{ media_url('/exports/photos.zip', attachment='photos.zip') }}">Download all</a>
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let signer = Arc::new(
        Signer::new(Keyring::new(Key::generate("web-1")?)).default_ttl(Duration::minutes(15)),
    );
    let user = "alice@example.com";

    let mut env = Environment::new();
    env.add_template("gallery.html", GALLERY)?;
    let for_user = user.to_owned();
    env.add_function(
        "media_url",
        move |path: String, kwargs: minijinja::value::Kwargs| -> Result<minijinja::Value, Error> {
            let attachment: Option<String> = kwargs.get("attachment")?;
            kwargs.assert_all_used()?;
            let mut link = signer.link(&for_user, &path);
            if let Some(name) = attachment.as_deref() {
                link = link.attachment(name);
            }
            // Signed and rendered in one step: the URL is the only
            // allocation. It percent-encodes every character HTML gives
            // meaning to (quotes, <, >, &), so it is safe in an attribute.
            let url = link
                .url("/media")
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            Ok(minijinja::Value::from_safe_string(url))
        },
    );

    let photos = [
        "/photos/alice/01.jpg",
        "/photos/alice/02 beach.jpg",
        "/photos/alice/03.jpg",
    ];
    let html = env
        .get_template("gallery.html")?
        .render(context! { user, photos })?;
    println!("{html}");
    Ok(())
}
