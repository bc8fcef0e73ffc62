"""viewer: the pygame window, the OpenGL renderer, the HUD, input devices and
headless capture. It draws poses and reads devices; it owns no animation logic.

- `viewer.renderer`: `Renderer(width, height, offscreen)`, `draw_frame(scene)`, `read_pixels()`.
- `viewer.scene`: `Scene`, `CharacterDraw` (plain data the renderer draws).
- `viewer.camera`: `Camera`, `project`, `update_follow` (orbit/follow camera).
- `viewer.input`: `DeviceInput`, `GamepadKeyboardInput`, `HELP_LINES`.
- `viewer.app`: `run_live`, `run_headless`.
- `viewer.demo_pose`: `DemoWalker`, a procedural test fixture controller.

Run `python -m viewer` for the live demo, `python -m viewer --headless DIR` to
capture frames without a display.
"""
