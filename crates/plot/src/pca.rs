//! Principal components of a few points, for drawing high-dimensional embeddings in 2-D.

/// Projects rows onto their top two principal components (power iteration with deflation
/// on the covariance matrix); returns the coordinates and each component's share of variance.
/// No rows give no coordinates.
pub fn pca_2d(rows: &[Vec<f64>]) -> (Vec<(f64, f64)>, (f64, f64)) {
    let Some(first) = rows.first() else {
        return (Vec::new(), (0.0, 0.0));
    };
    let n = rows.len() as f64;
    let d = first.len();
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let centred: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(x, m)| x - m).collect())
        .collect();
    let mut cov = vec![vec![0.0; d]; d];
    for r in &centred {
        for i in 0..d {
            for j in 0..d {
                cov[i][j] += r[i] * r[j] / n;
            }
        }
    }
    let total: f64 = (0..d).map(|i| cov[i][i]).sum::<f64>().max(1e-12);
    let mut components = Vec::new();
    let mut variances = Vec::new();
    for k in 0..2 {
        let mut v: Vec<f64> = (0..d)
            .map(|i| if i == k { 1.0 } else { 0.5 / (1.0 + i as f64) })
            .collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let w: Vec<f64> = (0..d)
                .map(|i| (0..d).map(|j| cov[i][j] * v[j]).sum())
                .collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-15 {
                break;
            }
            lambda = norm;
            v = w.into_iter().map(|x| x / norm).collect();
        }
        for i in 0..d {
            for j in 0..d {
                cov[i][j] -= lambda * v[i] * v[j];
            }
        }
        components.push(v);
        variances.push(lambda / total);
    }
    let project = |r: &Vec<f64>, c: &Vec<f64>| r.iter().zip(c).map(|(a, b)| a * b).sum::<f64>();
    let coords = centred
        .iter()
        .map(|r| (project(r, &components[0]), project(r, &components[1])))
        .collect();
    (coords, (variances[0], variances[1]))
}

#[cfg(test)]
mod tests {
    use super::pca_2d;

    #[test]
    fn pca_finds_the_spread_direction() {
        // Points along (3, 4)/5 with a little spread along (-4, 3)/5, in 3-D with a constant third axis.
        let rows: Vec<Vec<f64>> = (0..20)
            .map(|i| {
                // Each t appears with +s and -s, so t and s are uncorrelated.
                let t = f64::from(i / 2) - 4.5;
                let s = if i % 2 == 0 { 0.1 } else { -0.1 };
                vec![
                    3.0 * t / 5.0 - 4.0 * s / 5.0,
                    4.0 * t / 5.0 + 3.0 * s / 5.0,
                    7.0,
                ]
            })
            .collect();
        assert!(pca_2d(&[]).0.is_empty());
        let (coords, (v1, v2)) = pca_2d(&rows);
        assert!(v1 > 0.99 && v2 > 0.0 && v1 + v2 <= 1.0 + 1e-9, "{v1} {v2}");
        // The first coordinate recovers t up to sign; the second recovers s up to sign.
        for (i, (x, y)) in coords.iter().enumerate() {
            let t = (i / 2) as f64 - 4.5;
            assert!((x.abs() - t.abs()).abs() < 1e-6, "{x} vs {t}");
            assert!((y.abs() - 0.1).abs() < 1e-6, "{y}");
        }
    }
}
