"""The application layer: the `anim` command line, the session runner and the
stage registry. It builds stages (anim_app.registry) and runs them in the one
loop (anim.loop); anim/, controllers/ and viewer/ never import it."""
