"""srcockpit's engine room: training, weights, data and export jobs. Never imports Textual."""
